"""torch.compile for ComfyUI models that really compiles, measures itself honestly and keeps
its caches across restarts.

``settings`` turns the node's inputs into a compile plan, ``apply`` installs it on a
cloned ModelPatcher through ComfyUI's APPLY_MODEL wrapper mechanism, ``caches`` points
torch's own caches at comfyx's cache directory, ``metrics`` records what a compile cost
and what it bought, ``nodes`` exposes all of it to ComfyUI.
"""
