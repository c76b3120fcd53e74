# python/comfyx and python/comfyx-kernels test suites on the CPU, in the sandbox, with the CPU
# ComfyUI environment (the tests that need a GPU skip themselves).
{
  lib,
  runCommand,
  comfyui-cpu,
  comfyui-src,
}:
let
  # comfyx's `test` extra, read from its pyproject so that the two stay in step.
  requirements = import ../pkgs/requirements.nix { inherit lib; };
  testExtra =
    ps: requirements ps (lib.importTOML ../python/comfyx/pyproject.toml).project.optional-dependencies.test;
  env = comfyui-cpu.override {
    extraPythonPackages = ps: testExtra ps ++ [ ps.comfyx-kernels ];
  };
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../python
      ../conftest.py
      ../pytest.ini
    ];
  };
in
runCommand "comfyx-python-tests" { } ''
  export HOME=$TMPDIR
  export COMFYUI_PATH=${comfyui-src}
  cp -r ${src} src && chmod -R u+w src && cd src
  ${env.env}/bin/python -m pytest -p no:cacheprovider python | tee $out
''
