# A tiny random-weight SD1.5-architecture checkpoint, generated inside the build by comfyx's
# own generator (no downloads), for the VM tests and the Python suites.
{
  runCommand,
  comfyui-cpu,
  comfyui-src,
}:
runCommand "comfyx-tiny-sd15.safetensors" { } ''
  export HOME=$TMPDIR
  ${comfyui-cpu.env}/bin/python -m comfyx.testing.checkpoint --comfyui ${comfyui-src} $out
''
