"""The thin layer between ComfyUI's executor and the engine core.

Imported only once ComfyUI has imported its ``execution`` module (see
:func:`comfyx.engine.install`): every module here imports ComfyUI.
"""
