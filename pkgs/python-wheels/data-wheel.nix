# A pure-data wheel (no compiled code, no dependencies) pinned in sources.json.
{
  buildPythonPackage,
  fetchComfyxWheel,
  comfyxSources,
  name,
  module,
}:
buildPythonPackage {
  pname = name;
  inherit (comfyxSources.${name}) version;
  format = "wheel";
  src = fetchComfyxWheel name;
  pythonImportsCheck = [ module ];
}
