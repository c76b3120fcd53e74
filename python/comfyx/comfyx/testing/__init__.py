"""Test support that runs real ComfyUI: fixtures, a `comfyx serve` client, a tiny checkpoint."""
