# Shared fixtures (real ComfyUI checkout, `comfyx serve` server, tiny checkpoint) live in
# the comfyx package so that every test directory can use them.
pytest_plugins = ["comfyx.testing.fixtures"]
