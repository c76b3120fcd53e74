"""The engine's scheduling core: BMF worker pool, concurrency policy, cache keys.

Nothing here imports ComfyUI; the ComfyUI adapter (``comfyx.engine.comfy``) plugs
ComfyUI's own execution pieces into it.
"""
