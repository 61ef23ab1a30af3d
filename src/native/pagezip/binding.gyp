{
  # zlib is not built or linked here: the headers come from Node's include
  # directory (nodedir) and the symbols (deflate, deflateInit2_, inflate, ...)
  # are resolved against the node binary, which exports them, when the addon
  # is loaded. So the addon always uses the zlib node:zlib uses.
  "targets": [
    {
      "target_name": "pagezip",
      "sources": ["pagezip.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "xcode_settings": {
        "OTHER_CFLAGS": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
      }
    }
  ]
}
