{
  # zlib is not built or linked here: the headers come from Node's include
  # directory (nodedir) and the symbols (deflate, deflateInit2_, inflate, ...)
  # are resolved against the node binary, which exports them, when the addon
  # is loaded. So the addon's zlib is the one node:zlib uses.
  #
  # libdeflate (Debian's libdeflate-dev) makes page deflate 2-3x faster; it is
  # used when its header is on the system at build time, and the addon falls
  # back to zlib alone when it is not (a build without it still works).
  #
  # liblz4 (Debian's liblz4-dev) is found the same way: with it the addon
  # also compresses pages with LZ4 (stage 1's in-memory dump); without it
  # the addon has no LZ4 at all, and still builds and loads.
  "variables": {
    "pagezip_libdeflate": "<!(sh -c 'echo \"#include <libdeflate.h>\" | cc -E - >/dev/null 2>&1 && echo 1 || echo 0')",
    "pagezip_lz4": "<!(sh -c 'echo \"#include <lz4.h>\" | cc -E - >/dev/null 2>&1 && echo 1 || echo 0')"
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
        }],
        ["pagezip_lz4==1", {
          "defines": ["PAGEZIP_LZ4"],
          "libraries": ["-llz4"]
        }]
      ]
    }
  ]
}
