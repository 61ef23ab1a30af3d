{
  # zlib is not built or linked here: the headers come from Node's include
  # directory (nodedir) and the symbols (deflate, deflateInit2_, inflate, ...)
  # are resolved against the node binary, which exports them, when the addon
  # is loaded. So the addon's zlib is the one node:zlib uses.
  #
  # libdeflate (Debian's libdeflate-dev) makes page deflate 2-3x faster; it is
  # used when its header is on the system at build time, and the addon falls
  # back to zlib alone when it is not (a build without it still works).
  "variables": {
    "pagezip_libdeflate": "<!(sh -c 'echo \"#include <libdeflate.h>\" | cc -E - >/dev/null 2>&1 && echo 1 || echo 0')"
  },
  "targets": [
    {
      "target_name": "pagezip",
      "sources": ["pagezip.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-pthread"],
      "ldflags": ["-pthread"],
      "xcode_settings": {
        "OTHER_CFLAGS": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
      },
      "conditions": [
        ["pagezip_libdeflate==1", {
          "defines": ["PAGEZIP_LIBDEFLATE"],
          "libraries": ["-ldeflate"]
        }]
      ]
    }
  ]
}
