/*
 * pagezip: zlib (RFC 1950) compression of single dump pages with persistent
 * streams, for the LKCD "gzip" compression (dh_dump_compress == 2).
 *
 * The kernel's dump_gzip.c compresses each page with zlib_deflate(Z_FINISH)
 * into a zlib stream and keeps the page raw when the result is not smaller;
 * crash reads it back with uncompress(). This addon does the same work with
 * one z_stream per Deflater/Inflater object that is reset between pages
 * (deflateReset/inflateReset), instead of paying deflateInit/deflateEnd and
 * the window allocation for every page as node:zlib's *Sync functions do.
 *
 * JavaScript API (typed by src/dump/codecs/gzip.ts):
 *
 *   new Deflater(level)
 *     .deflate(src, dst)                 -> compressed length, or 0
 *     .close()
 *   new Inflater()
 *     .inflate(src, dst)                 -> produced length (throws on error)
 *     .close()
 *   new BatchDeflater(level, threads, pageSize[, zlibOnly[, codec]])
 *                                        codec "deflate" (default): zlib
 *                                           streams; "lz4": LZ4 blocks
 *                                           (level unused; needs liblz4)
 *     .start(src, count, dst, sizes[, crcs[, lengths]])
 *                                        -> starts compressing count pages of
 *                                           src on `threads` native threads;
 *                                           crcs[i]: CRC32 of what is stored;
 *                                           with lengths (Int32Array, needs
 *                                           liblz4): page i of src holds an
 *                                           LZ4 block of lengths[i] bytes
 *                                           (pageSize: the page itself), decoded
 *                                           first; what is stored, stream or
 *                                           page, is then in dst
 *     .wait()                            -> waits for them (throws on error)
 *     .close()
 *   new BatchInflater(threads, pageSize)
 *     .start(src, offsets, lengths, count, dst, results)
 *                                        -> starts inflating count zlib
 *                                           streams of src into pages of dst
 *     .wait()                            -> waits for them
 *     .close()
 *   crc32(buf[, crc])                    -> CRC32 (the zlib one) of buf
 *   crc32Split(buf, split, out)          -> out[0] = CRC32 of buf[split..],
 *                                           out[1] = CRC32 of buf
 *   zlibVersion                          -> zlibVersion() of the linked zlib
 *   engine                               -> "libdeflate" or "zlib": what deflates
 * and, only when built with liblz4 (PAGEZIP_LZ4):
 *   lz4Compress(src, dst)                -> LZ4 block length, or 0 (not
 *                                           strictly smaller: store raw)
 *   lz4Decompress(src, dst)              -> produced length (throws
 *                                           ERR_LZ4_CORRUPT on a bad block)
 *   lz4Version                           -> LZ4_versionString()
 *
 * Buffers are Uint8Arrays (Buffers included); the addon keeps no reference
 * to them past a call, except that BatchDeflater.start's buffers belong to
 * the batch until wait() returns (the caller must not touch them between).
 *
 * Deflate runs through libdeflate when the addon was built with it
 * (Debian's libdeflate-dev; binding.gyp looks for it): it writes zlib
 * streams that any inflate reads (crash's uncompress(), libkdumpfile),
 * 2-3x faster than zlib at level 1 on dump pages. Without it, zlib does.
 * The bytes differ between the two engines; the pages they give back do
 * not. A batch compresses many pages per call on several threads while the
 * JavaScript thread goes on with the previous batch: stage 1's panic path.
 * Inflate runs through libdeflate too when it is there (about twice zlib's
 * speed); a stream libdeflate refuses is inflated again by zlib, so every
 * error carries zlib's own message.
 *
 * LZ4 (Debian's liblz4-dev, found by binding.gyp like libdeflate) is
 * stage 1's page codec for the dump it keeps in memory: an LZ4 block per
 * page, about 5x libdeflate level 1's speed. Those blocks never reach a
 * dump file: the writeout transcodes them to zlib streams.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include <node_api.h>
#include <zlib.h>
#ifdef PAGEZIP_LIBDEFLATE
#include <libdeflate.h>
#endif
#ifdef PAGEZIP_LZ4
#include <lz4.h>
#endif

/* Same parameters as deflateInit(), which zlib_deflateInit() mirrors. */
#define PAGEZIP_WINDOW_BITS MAX_WBITS
#define PAGEZIP_MEM_LEVEL 8

#define ERROR_MESSAGE_MAX 256

/* --- one page, either engine --------------------------------------------------- */

/* The page codecs a compressor can run. */
typedef enum { PAGE_CODEC_DEFLATE = 0, PAGE_CODEC_LZ4 = 1 } PageCodec;

/*
 * A compressor of single pages: LZ4 with its own state, libdeflate's, or a
 * z_stream reset between pages.
 */
typedef struct {
#ifdef PAGEZIP_LIBDEFLATE
  struct libdeflate_compressor *ld;
#endif
#ifdef PAGEZIP_LZ4
  /*
   * LZ4_sizeofState() bytes for LZ4_compress_fast_extState, which clears
   * it for every page: each block depends on its page alone, whichever
   * thread compresses it (the _fastReset variant keeps stale hash entries
   * and would make a page's bytes depend on the pages before it).
   */
  void *lz4_state;
#endif
  z_stream strm;
  int zopen;
  int zdirty;
} PageCompressor;

/*
 * codec PAGE_CODEC_LZ4: LZ4 blocks (the caller has checked the addon has
 * liblz4); level is then unused. zlib_only: deflate with zlib even when
 * libdeflate is built in (the streams differ, the pages do not).
 */
static int page_compressor_init(PageCompressor *c, int level, int zlib_only, PageCodec codec) {
  memset(c, 0, sizeof *c);
  if (codec == PAGE_CODEC_LZ4) {
#ifdef PAGEZIP_LZ4
    c->lz4_state = malloc((size_t)LZ4_sizeofState());
    return c->lz4_state ? Z_OK : Z_MEM_ERROR;
#else
    return Z_STREAM_ERROR;
#endif
  }
#ifdef PAGEZIP_LIBDEFLATE
  /* libdeflate has no level 0 (store): zlib keeps that one. */
  if (level >= 1 && !zlib_only) {
    c->ld = libdeflate_alloc_compressor(level);
    return c->ld ? Z_OK : Z_MEM_ERROR;
  }
#endif
  int ret = deflateInit2(&c->strm, level, Z_DEFLATED, PAGEZIP_WINDOW_BITS, PAGEZIP_MEM_LEVEL, Z_DEFAULT_STRATEGY);
  if (ret == Z_OK) c->zopen = 1;
  return ret;
}

static void page_compressor_end(PageCompressor *c) {
#ifdef PAGEZIP_LZ4
  free(c->lz4_state);
  c->lz4_state = NULL;
#endif
#ifdef PAGEZIP_LIBDEFLATE
  if (c->ld) libdeflate_free_compressor(c->ld);
  c->ld = NULL;
#endif
  if (c->zopen) deflateEnd(&c->strm);
  c->zopen = 0;
}

/*
 * Compresses src (src_len > 0 bytes) into dst, which holds src_len - 1
 * bytes: a stream that needs more is "not strictly smaller" and 0 comes
 * back (the page is stored raw). A zlib error returns its (negative) code.
 * LZ4 returns 0 for a block that does not fit as well (its only failure).
 */
static int64_t page_compress(PageCompressor *c, const uint8_t *src, size_t src_len, uint8_t *dst) {
#ifdef PAGEZIP_LZ4
  if (c->lz4_state) {
    /* Acceleration 1: LZ4_compress_default's. Page sizes are far below LZ4_MAX_INPUT_SIZE. */
    int n = LZ4_compress_fast_extState(c->lz4_state, (const char *)src, (char *)dst, (int)src_len, (int)(src_len - 1), 1);
    return n > 0 ? (int64_t)n : 0;
  }
#endif
#ifdef PAGEZIP_LIBDEFLATE
  if (c->ld) return (int64_t)libdeflate_zlib_compress(c->ld, src, src_len, dst, src_len - 1);
#endif
  if (c->zdirty) {
    int r = deflateReset(&c->strm);
    if (r != Z_OK) return r < 0 ? r : Z_STREAM_ERROR;
  }
  c->zdirty = 1;
  c->strm.next_in = (Bytef *)src;
  c->strm.avail_in = (uInt)src_len;
  c->strm.next_out = dst;
  c->strm.avail_out = (uInt)(src_len - 1);
  int ret = deflate(&c->strm, Z_FINISH);
  if (ret == Z_STREAM_END) return (int64_t)c->strm.total_out;
  if (ret == Z_OK || ret == Z_BUF_ERROR) return 0;
  return ret < 0 ? ret : Z_STREAM_ERROR;
}

typedef struct {
  PageCompressor c;
  int level;
  int open;  /* the compressor was set up and close() has not run */
} Deflater;

typedef struct {
  z_stream strm;
#ifdef PAGEZIP_LIBDEFLATE
  struct libdeflate_decompressor *ld;
#endif
  int open;
  int dirty;
} Inflater;

/* CRC32 (ISO-HDLC, as zlib's crc32() and node:zlib.crc32 compute it). */
static uint32_t page_crc32(uint32_t crc, const uint8_t *p, size_t n) {
#ifdef PAGEZIP_LIBDEFLATE
  return libdeflate_crc32(crc, p, n);
#else
  while (n > 0) {
    uInt k = n > UINT_MAX ? UINT_MAX : (uInt)n;
    crc = (uint32_t)crc32(crc, p, k);
    p += k;
    n -= k;
  }
  return crc;
#endif
}

/*
 * The fast path of one page's inflate: src must be exactly one zlib stream
 * and give at most dst_len bytes. Returns the bytes produced, or -1 when
 * libdeflate refuses the stream or is absent (zlib then decides, and names
 * the problem).
 */
#ifdef PAGEZIP_LIBDEFLATE
static int64_t fast_inflate(struct libdeflate_decompressor *d, const uint8_t *src, size_t src_len, uint8_t *dst, size_t dst_len) {
  size_t in = 0, out = 0;
  if (!d) return -1;
  enum libdeflate_result r = libdeflate_zlib_decompress_ex(d, src, src_len, dst, dst_len, &in, &out);
  if (r != LIBDEFLATE_SUCCESS || in != src_len) return -1;
  return (int64_t)out;
}
#endif

/* --- helpers ---------------------------------------------------------------- */

/* Evaluates a napi_* call; on failure throws (unless an exception is already
 * pending) and returns NULL from the calling callback. */
#define NAPI_CALL(env, call)                                                   \
  do {                                                                         \
    if ((call) != napi_ok) {                                                   \
      throw_last_error((env), #call);                                          \
      return NULL;                                                             \
    }                                                                          \
  } while (0)

static void throw_last_error(napi_env env, const char *what) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return;
  const napi_extended_error_info *info = NULL;
  napi_get_last_error_info(env, &info);
  char msg[ERROR_MESSAGE_MAX];
  snprintf(msg, sizeof msg, "pagezip: %s failed: %s", what,
           info && info->error_message ? info->error_message : "unknown N-API error");
  napi_throw_error(env, "ERR_PAGEZIP_NAPI", msg);
}

static const char *zlib_code_name(int ret) {
  switch (ret) {
    case Z_OK: return "Z_OK";
    case Z_STREAM_END: return "Z_STREAM_END";
    case Z_NEED_DICT: return "Z_NEED_DICT";
    case Z_ERRNO: return "Z_ERRNO";
    case Z_STREAM_ERROR: return "Z_STREAM_ERROR";
    case Z_DATA_ERROR: return "Z_DATA_ERROR";
    case Z_MEM_ERROR: return "Z_MEM_ERROR";
    case Z_BUF_ERROR: return "Z_BUF_ERROR";
    case Z_VERSION_ERROR: return "Z_VERSION_ERROR";
    default: return "Z_UNKNOWN";
  }
}

/* Throws an Error whose code is the zlib return code's name. */
static void throw_zlib(napi_env env, int ret, const char *msg) {
  napi_throw_error(env, zlib_code_name(ret), msg);
}

/* The bytes of a Uint8Array argument (a Buffer is one). */
static int get_u8(napi_env env, napi_value v, const char *name, uint8_t **data, size_t *len) {
  bool is_ta = false;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta) {
    char msg[ERROR_MESSAGE_MAX];
    snprintf(msg, sizeof msg, "pagezip: %s must be a Uint8Array", name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return 0;
  }
  napi_typedarray_type type;
  void *p = NULL;
  if (napi_get_typedarray_info(env, v, &type, len, &p, NULL, NULL) != napi_ok) {
    throw_last_error(env, "napi_get_typedarray_info");
    return 0;
  }
  if (type != napi_uint8_array) {
    char msg[ERROR_MESSAGE_MAX];
    snprintf(msg, sizeof msg, "pagezip: %s must be a Uint8Array", name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return 0;
  }
  /* An empty typed array may report a NULL data pointer; zlib wants a valid one. */
  static uint8_t empty;
  *data = p ? (uint8_t *)p : &empty;
  return 1;
}

static int get_int(napi_env env, napi_value v, const char *name, int64_t *out) {
  napi_valuetype t;
  double d;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number ||
      napi_get_value_double(env, v, &d) != napi_ok || d != (double)(int64_t)d) {
    char msg[ERROR_MESSAGE_MAX];
    snprintf(msg, sizeof msg, "pagezip: %s must be an integer", name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return 0;
  }
  *out = (int64_t)d;
  return 1;
}

static napi_value make_u32(napi_env env, uint32_t x) {
  napi_value v = NULL;
  if (napi_create_uint32(env, x, &v) != napi_ok) throw_last_error(env, "napi_create_uint32");
  return v;
}

/* Unwraps `this` and the first `want` arguments. */
static void *unwrap_this(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  napi_value self;
  void *obj = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, &self, NULL) != napi_ok) {
    throw_last_error(env, "napi_get_cb_info");
    return NULL;
  }
  if (argc < want) {
    char msg[ERROR_MESSAGE_MAX];
    snprintf(msg, sizeof msg, "pagezip: expected %zu arguments, got %zu", want, argc);
    napi_throw_type_error(env, "ERR_MISSING_ARGS", msg);
    return NULL;
  }
  if (napi_unwrap(env, self, &obj) != napi_ok || obj == NULL) {
    napi_throw_type_error(env, "ERR_INVALID_THIS", "pagezip: method called on a foreign object");
    return NULL;
  }
  return obj;
}

/* --- Deflater ---------------------------------------------------------------- */

static void deflater_end(Deflater *d) {
  if (d->open) {
    page_compressor_end(&d->c);
    d->open = 0;
  }
}

static void deflater_finalize(napi_env env, void *data, void *hint) {
  Deflater *d = (Deflater *)data;
  deflater_end(d);
  free(d);
}

/*
 * Compresses src into dst, stopping as soon as the output would reach
 * src_len bytes: the caller stores such a page raw. Returns the length, or 0
 * for "not strictly smaller"; -1 after throwing.
 */
static int64_t deflate_one(napi_env env, Deflater *d, uint8_t *src, size_t src_len, uint8_t *dst) {
  if (src_len == 0) return 0;
  int64_t n = page_compress(&d->c, src, src_len, dst);
  if (n >= 0) return n;
  char msg[ERROR_MESSAGE_MAX];
  snprintf(msg, sizeof msg, "zlib deflate: %s", d->c.strm.msg ? d->c.strm.msg : zlib_code_name((int)n));
  throw_zlib(env, (int)n, msg);
  return -1;
}

static napi_value deflater_new(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_value self;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, &self, NULL));
  napi_value target = NULL;
  NAPI_CALL(env, napi_get_new_target(env, info, &target));
  if (target == NULL) {
    napi_throw_type_error(env, "ERR_CONSTRUCT_CALL_REQUIRED", "pagezip: Deflater must be called with new");
    return NULL;
  }
  if (argc < 1) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "pagezip: Deflater(level) needs a level");
    return NULL;
  }
  int64_t level;
  if (!get_int(env, argv[0], "level", &level)) return NULL;
  bool zlib_only = false;
  if (argc >= 2) NAPI_CALL(env, napi_get_value_bool(env, argv[1], &zlib_only));
  if (level < Z_NO_COMPRESSION || level > Z_BEST_COMPRESSION) {
    char msg[ERROR_MESSAGE_MAX];
    snprintf(msg, sizeof msg, "pagezip: deflate level %lld is outside 0..9", (long long)level);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
    return NULL;
  }
  Deflater *d = (Deflater *)calloc(1, sizeof *d);
  if (!d) {
    napi_throw_error(env, "Z_MEM_ERROR", "pagezip: out of memory");
    return NULL;
  }
  d->level = (int)level;
  int ret = page_compressor_init(&d->c, d->level, zlib_only, PAGE_CODEC_DEFLATE);
  if (ret != Z_OK) {
    char msg[ERROR_MESSAGE_MAX];
    snprintf(msg, sizeof msg, "pagezip: setting up the compressor: %s", zlib_code_name(ret));
    free(d);
    throw_zlib(env, ret, msg);
    return NULL;
  }
  d->open = 1;
  if (napi_wrap(env, self, d, deflater_finalize, NULL, NULL) != napi_ok) {
    deflater_end(d);
    free(d);
    throw_last_error(env, "napi_wrap");
    return NULL;
  }
  return self;
}

static Deflater *open_deflater(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  Deflater *d = (Deflater *)unwrap_this(env, info, want, argv);
  if (d && !d->open) {
    napi_throw_error(env, "ERR_PAGEZIP_CLOSED", "pagezip: Deflater is closed");
    return NULL;
  }
  return d;
}

/*
 * A compressor's output room: a stream must be strictly smaller than its
 * input to be kept, so dst holds src_len - 1 bytes; 0 after throwing a
 * RangeError that says so (`verb`: what the caller does).
 */
static int dst_room(napi_env env, size_t src_len, size_t dst_len, const char *verb) {
  if (src_len == 0 || dst_len >= src_len - 1) return 1;
  char msg[ERROR_MESSAGE_MAX];
  snprintf(msg, sizeof msg, "pagezip: dst holds %zu bytes, %s %zu bytes needs at least %zu", dst_len, verb, src_len, src_len - 1);
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
  return 0;
}

/* deflate(src, dst): dst must hold at least src.length - 1 bytes. */
static napi_value deflater_deflate(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  Deflater *d = open_deflater(env, info, 2, argv);
  if (!d) return NULL;
  uint8_t *src, *dst;
  size_t src_len, dst_len;
  if (!get_u8(env, argv[0], "src", &src, &src_len) || !get_u8(env, argv[1], "dst", &dst, &dst_len)) return NULL;
  if (src_len > UINT_MAX) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "pagezip: src is larger than 4 GiB - 1");
    return NULL;
  }
  if (!dst_room(env, src_len, dst_len, "deflating")) return NULL;
  int64_t n = deflate_one(env, d, src, src_len, dst);
  if (n < 0) return NULL;
  return make_u32(env, (uint32_t)n);
}

static napi_value deflater_close(napi_env env, napi_callback_info info) {
  Deflater *d = (Deflater *)unwrap_this(env, info, 0, NULL);
  if (!d) return NULL;
  deflater_end(d);
  return NULL;
}

/* --- Inflater ---------------------------------------------------------------- */

static void inflater_end(Inflater *z) {
  if (z->open) {
    inflateEnd(&z->strm);
#ifdef PAGEZIP_LIBDEFLATE
    if (z->ld) libdeflate_free_decompressor(z->ld);
    z->ld = NULL;
#endif
    z->open = 0;
  }
}

static void inflater_finalize(napi_env env, void *data, void *hint) {
  Inflater *z = (Inflater *)data;
  inflater_end(z);
  free(z);
}

static napi_value inflater_new(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  napi_value self;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, NULL, &self, NULL));
  napi_value target = NULL;
  NAPI_CALL(env, napi_get_new_target(env, info, &target));
  if (target == NULL) {
    napi_throw_type_error(env, "ERR_CONSTRUCT_CALL_REQUIRED", "pagezip: Inflater must be called with new");
    return NULL;
  }
  Inflater *z = (Inflater *)calloc(1, sizeof *z);
  if (!z) {
    napi_throw_error(env, "Z_MEM_ERROR", "pagezip: out of memory");
    return NULL;
  }
  /* zlib format only, as uncompress() reads it: no gzip or raw auto-detection. */
  int ret = inflateInit2(&z->strm, PAGEZIP_WINDOW_BITS);
  if (ret != Z_OK) {
    char msg[ERROR_MESSAGE_MAX];
    snprintf(msg, sizeof msg, "zlib inflateInit2: %s", z->strm.msg ? z->strm.msg : zlib_code_name(ret));
    free(z);
    throw_zlib(env, ret, msg);
    return NULL;
  }
#ifdef PAGEZIP_LIBDEFLATE
  /* No libdeflate decompressor is no error: zlib alone does the work. */
  z->ld = libdeflate_alloc_decompressor();
#endif
  z->open = 1;
  if (napi_wrap(env, self, z, inflater_finalize, NULL, NULL) != napi_ok) {
    inflater_end(z);
    free(z);
    throw_last_error(env, "napi_wrap");
    return NULL;
  }
  return self;
}

/*
 * inflate(src, dst): src must be exactly one zlib stream; its data must fit
 * in dst. Returns the number of bytes written to dst. Throws an Error whose
 * code is the zlib return code's name on corrupt, truncated, or trailing
 * input, and on output that does not fit.
 */
static napi_value inflater_inflate(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  Inflater *z = (Inflater *)unwrap_this(env, info, 2, argv);
  if (!z) return NULL;
  if (!z->open) {
    napi_throw_error(env, "ERR_PAGEZIP_CLOSED", "pagezip: Inflater is closed");
    return NULL;
  }
  uint8_t *src, *dst;
  size_t src_len, dst_len;
  if (!get_u8(env, argv[0], "src", &src, &src_len) || !get_u8(env, argv[1], "dst", &dst, &dst_len)) return NULL;
  if (src_len > UINT_MAX || dst_len > UINT_MAX) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "pagezip: buffer larger than 4 GiB - 1");
    return NULL;
  }
#ifdef PAGEZIP_LIBDEFLATE
  {
    int64_t n = fast_inflate(z->ld, src, src_len, dst, dst_len);
    if (n >= 0) return make_u32(env, (uint32_t)n);
  }
#endif
  if (z->dirty) {
    int r = inflateReset(&z->strm);
    if (r != Z_OK) {
      throw_zlib(env, r, "pagezip: inflateReset failed");
      return NULL;
    }
  }
  z->dirty = 1;
  z_stream *s = &z->strm;
  s->next_in = src;
  s->avail_in = (uInt)src_len;
  s->next_out = dst;
  s->avail_out = (uInt)dst_len;
  int ret = inflate(s, Z_FINISH);
  char msg[ERROR_MESSAGE_MAX];
  switch (ret) {
    case Z_STREAM_END:
      if (s->avail_in != 0) {
        snprintf(msg, sizeof msg, "zlib inflate: trailing data: the zlib stream ends after %lu of %zu input bytes",
                 s->total_in, src_len);
        throw_zlib(env, Z_DATA_ERROR, msg);
        return NULL;
      }
      return make_u32(env, (uint32_t)s->total_out);
    case Z_OK:
    case Z_BUF_ERROR:
      if (s->avail_out == 0) {
        /* dst is full: find out whether the stream has more to give. */
        uint8_t probe;
        s->next_out = &probe;
        s->avail_out = 1;
        int more = inflate(s, Z_FINISH);
        if (s->avail_out == 0) {
          snprintf(msg, sizeof msg, "zlib inflate: output overflow: the stream inflates to more than %zu bytes",
                   dst_len);
          throw_zlib(env, Z_BUF_ERROR, msg);
          return NULL;
        }
        if (more == Z_STREAM_END && s->avail_in == 0) return make_u32(env, (uint32_t)dst_len);
        if (more == Z_STREAM_END) {
          snprintf(msg, sizeof msg, "zlib inflate: trailing data: the zlib stream ends after %lu of %zu input bytes",
                   s->total_in, src_len);
          throw_zlib(env, Z_DATA_ERROR, msg);
          return NULL;
        }
        if (more != Z_OK && more != Z_BUF_ERROR) {
          ret = more;
          break;
        }
      }
      snprintf(msg, sizeof msg, "zlib inflate: truncated stream: input ended after %zu bytes (%lu bytes inflated)",
               src_len, s->total_out);
      throw_zlib(env, Z_BUF_ERROR, msg);
      return NULL;
    case Z_NEED_DICT:
      throw_zlib(env, ret, "zlib inflate: the stream needs a preset dictionary");
      return NULL;
    default:
      break;
  }
  snprintf(msg, sizeof msg, "zlib inflate: %s", s->msg ? s->msg : zlib_code_name(ret));
  throw_zlib(env, ret, msg);
  return NULL;
}

static napi_value inflater_close(napi_env env, napi_callback_info info) {
  Inflater *z = (Inflater *)unwrap_this(env, info, 0, NULL);
  if (!z) return NULL;
  inflater_end(z);
  return NULL;
}

/* --- BatchDeflater ------------------------------------------------------------ */

#define PAGEZIP_MAX_THREADS 16
/* Pages a thread takes from the batch at a time. */
#define PAGEZIP_GRAIN 8

typedef struct BatchDeflater BatchDeflater;

typedef struct {
  BatchDeflater *b;
  PageCompressor c;
  pthread_t tid;
  int started;
  int64_t error; /* 0, or the negative zlib code of a failed page (PAGEZIP_E_LZ4: an LZ4 input did not decode) */
  uint8_t *page; /* an LZ4 input page decoded (batches started with lengths) */
} BatchWorker;

/* A worker's error: an LZ4 input of a batch started with lengths is not a page. */
#define PAGEZIP_E_LZ4 (-1000)

#ifdef PAGEZIP_LZ4
static int64_t lz4_zero_offset(const uint8_t *src, size_t len);
#endif

/*
 * The threads of a batch live as long as the BatchDeflater: started at its
 * first batch, woken for each one (a generation count under `mu`), and
 * joined by close(). Creating them for every batch cost more than
 * compressing a batch of LZ4 pages. The caller's thread compresses too
 * while it waits (w[threads], when there is more than one thread), taking
 * pages from the same counter, so no core idles while pages remain.
 */
struct BatchDeflater {
  int level;
  int threads;
  int open;
  int running;
  size_t page_size;
  BatchWorker w[PAGEZIP_MAX_THREADS + 1];
  pthread_mutex_t mu;
  pthread_cond_t work_cv;
  pthread_cond_t done_cv;
  unsigned long gen;  /* bumped for each batch */
  int busy;           /* pool threads not done with this batch */
  int quit;
  int pool;           /* pool threads running (0: not started, or none could start) */
  int pool_tried;
  /* The batch in flight: its buffers stay referenced until wait(). */
  const uint8_t *src;
  uint8_t *dst;
  int32_t *sizes;
  uint32_t *crcs; /* NULL: no checksums asked for */
  size_t count;
  size_t next; /* the next page a thread takes (atomic) */
  const int32_t *lengths; /* NULL, or the LZ4 input's length per page (pageSize: the page itself) */
  napi_ref refs[5];
};

/*
 * The page to compress for page i: the input itself, or its LZ4 block
 * decoded into the worker's page buffer; NULL when it does not decode to
 * exactly one page.
 */
static const uint8_t *batch_input(BatchWorker *w, size_t i) {
  BatchDeflater *b = w->b;
  const size_t ps = b->page_size;
  const uint8_t *in = b->src + i * ps;
  if (!b->lengths || b->lengths[i] == (int32_t)ps) return in;
#ifdef PAGEZIP_LZ4
  int32_t len = b->lengths[i];
  if (len <= 0 || (size_t)len > ps || lz4_zero_offset(in, (size_t)len) >= 0) return NULL;
  if (LZ4_decompress_safe((const char *)in, (char *)w->page, len, (int)ps) != (int)ps) return NULL;
  return w->page;
#else
  return NULL;
#endif
}

static void batch_run(BatchWorker *w) {
  BatchDeflater *b = w->b;
  const size_t ps = b->page_size;
  for (;;) {
    size_t first = __atomic_fetch_add(&b->next, PAGEZIP_GRAIN, __ATOMIC_RELAXED);
    if (first >= b->count) return;
    size_t end = first + PAGEZIP_GRAIN < b->count ? first + PAGEZIP_GRAIN : b->count;
    for (size_t i = first; i < end; i++) {
      const uint8_t *in = batch_input(w, i);
      if (!in) {
        w->error = PAGEZIP_E_LZ4;
        b->sizes[i] = -1;
        continue;
      }
      int64_t n = page_compress(&w->c, in, ps, b->dst + i * ps);
      if (n < 0) {
        w->error = n;
        b->sizes[i] = -1;
        continue;
      }
      b->sizes[i] = (int32_t)n;
      const int stored_raw = !(n > 0 && (size_t)n < ps);
      /* With LZ4 inputs the page is not in src: a page stored raw is copied where the streams go. */
      if (stored_raw && b->lengths) memcpy(b->dst + i * ps, in, ps);
      /* The stored bytes: the stream when it is strictly smaller, else the page. */
      if (b->crcs) b->crcs[i] = stored_raw ? page_crc32(0, in, ps) : page_crc32(0, b->dst + i * ps, (size_t)n);
    }
  }
}

static void *batch_thread(void *arg) {
  BatchWorker *w = (BatchWorker *)arg;
  BatchDeflater *b = w->b;
  unsigned long seen = 0;
  pthread_mutex_lock(&b->mu);
  for (;;) {
    while (!b->quit && b->gen == seen) pthread_cond_wait(&b->work_cv, &b->mu);
    if (b->quit) break;
    seen = b->gen;
    pthread_mutex_unlock(&b->mu);
    batch_run(w);
    pthread_mutex_lock(&b->mu);
    if (--b->busy == 0) pthread_cond_signal(&b->done_cv);
  }
  pthread_mutex_unlock(&b->mu);
  return NULL;
}

/* Starts the pool at the first batch; b->pool says how many threads run (0: the caller does the work). */
static void batch_pool_start(BatchDeflater *b) {
  if (b->pool_tried) return;
  b->pool_tried = 1;
  for (int t = 0; t < b->threads; t++) {
    b->w[t].started = pthread_create(&b->w[t].tid, NULL, batch_thread, &b->w[t]) == 0;
    if (!b->w[t].started) break;
    b->pool++;
  }
}

static void batch_pool_stop(BatchDeflater *b) {
  if (b->pool == 0) return;
  pthread_mutex_lock(&b->mu);
  b->quit = 1;
  pthread_cond_broadcast(&b->work_cv);
  pthread_mutex_unlock(&b->mu);
  for (int t = 0; t < b->threads; t++) {
    if (b->w[t].started) pthread_join(b->w[t].tid, NULL);
    b->w[t].started = 0;
  }
  b->pool = 0;
}

/* Finishes the batch in flight (helping with it); returns the first error (0: none). */
static int64_t batch_join(napi_env env, BatchDeflater *b) {
  int64_t err = 0;
  if (!b->running) return 0;
  if (b->pool > 0) {
    if (b->threads > 1) batch_run(&b->w[b->threads]);
    pthread_mutex_lock(&b->mu);
    while (b->busy > 0) pthread_cond_wait(&b->done_cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
  }
  for (int t = 0; t <= b->threads; t++) {
    BatchWorker *w = &b->w[t];
    if (w->error && !err) err = w->error;
    w->error = 0;
  }
  b->running = 0;
  if (env) {
    for (int i = 0; i < 5; i++) {
      if (b->refs[i]) napi_delete_reference(env, b->refs[i]);
      b->refs[i] = NULL;
    }
  }
  return err;
}

static void batch_end(BatchDeflater *b) {
  if (!b->open) return;
  batch_pool_stop(b);
  for (int t = 0; t <= b->threads; t++) {
    page_compressor_end(&b->w[t].c);
    free(b->w[t].page);
    b->w[t].page = NULL;
  }
  pthread_mutex_destroy(&b->mu);
  pthread_cond_destroy(&b->work_cv);
  pthread_cond_destroy(&b->done_cv);
  b->open = 0;
}

static void batch_finalize(napi_env env, void *data, void *hint) {
  BatchDeflater *b = (BatchDeflater *)data;
  /* The environment is going away: join without touching references. */
  batch_join(NULL, b);
  batch_end(b);
  free(b);
}

/* An optional boolean argument: undefined is false. */
static int get_opt_bool(napi_env env, napi_value v, const char *name, bool *out) {
  napi_valuetype t;
  *out = false;
  if (napi_typeof(env, v, &t) != napi_ok) {
    throw_last_error(env, "napi_typeof");
    return 0;
  }
  if (t == napi_undefined) return 1;
  if (t != napi_boolean || napi_get_value_bool(env, v, out) != napi_ok) {
    char msg[ERROR_MESSAGE_MAX];
    snprintf(msg, sizeof msg, "pagezip: %s must be a boolean", name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return 0;
  }
  return 1;
}

/*
 * The codec argument: undefined or "deflate" (zlib streams), or "lz4" (LZ4
 * blocks), which needs the addon built with liblz4.
 */
static int get_codec(napi_env env, napi_value v, PageCodec *out) {
  napi_valuetype t;
  char name[16];
  size_t len = 0;
  *out = PAGE_CODEC_DEFLATE;
  if (napi_typeof(env, v, &t) != napi_ok) {
    throw_last_error(env, "napi_typeof");
    return 0;
  }
  if (t == napi_undefined) return 1;
  if (t != napi_string || napi_get_value_string_utf8(env, v, name, sizeof name, &len) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "pagezip: codec must be \"deflate\" or \"lz4\"");
    return 0;
  }
  if (strcmp(name, "deflate") == 0) return 1;
  if (strcmp(name, "lz4") == 0) {
#ifdef PAGEZIP_LZ4
    *out = PAGE_CODEC_LZ4;
    return 1;
#else
    napi_throw_error(env, "ERR_PAGEZIP_NO_LZ4", "pagezip: codec \"lz4\" asked for, but the addon was built without liblz4 (liblz4-dev)");
    return 0;
#endif
  }
  char msg[ERROR_MESSAGE_MAX];
  snprintf(msg, sizeof msg, "pagezip: unknown codec \"%s\": \"deflate\" or \"lz4\"", name);
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
  return 0;
}

static napi_value batch_new(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_value self;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, &self, NULL));
  napi_value target = NULL;
  NAPI_CALL(env, napi_get_new_target(env, info, &target));
  if (target == NULL) {
    napi_throw_type_error(env, "ERR_CONSTRUCT_CALL_REQUIRED", "pagezip: BatchDeflater must be called with new");
    return NULL;
  }
  if (argc < 3) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "pagezip: BatchDeflater(level, threads, pageSize[, zlibOnly[, codec]])");
    return NULL;
  }
  int64_t level, threads, page_size;
  if (!get_int(env, argv[0], "level", &level) || !get_int(env, argv[1], "threads", &threads) ||
      !get_int(env, argv[2], "pageSize", &page_size)) return NULL;
  bool zlib_only = false;
  if (argc >= 4 && !get_opt_bool(env, argv[3], "zlibOnly", &zlib_only)) return NULL;
  PageCodec codec = PAGE_CODEC_DEFLATE;
  if (argc >= 5 && !get_codec(env, argv[4], &codec)) return NULL;
  if (level < Z_NO_COMPRESSION || level > Z_BEST_COMPRESSION || threads < 1 || threads > PAGEZIP_MAX_THREADS ||
      page_size < 2 || page_size > (1 << 20)) {
    char msg[ERROR_MESSAGE_MAX];
    snprintf(msg, sizeof msg, "pagezip: BatchDeflater(%lld, %lld, %lld): level 0..9, threads 1..%d, page size 2..1 MiB",
             (long long)level, (long long)threads, (long long)page_size, PAGEZIP_MAX_THREADS);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
    return NULL;
  }
  BatchDeflater *b = (BatchDeflater *)calloc(1, sizeof *b);
  if (!b) {
    napi_throw_error(env, "Z_MEM_ERROR", "pagezip: out of memory");
    return NULL;
  }
  b->level = (int)level;
  b->threads = (int)threads;
  b->page_size = (size_t)page_size;
  /* One compressor per pool thread and one for the caller (w[threads]). */
  for (int t = 0; t <= b->threads; t++) {
    b->w[t].b = b;
    int ret = page_compressor_init(&b->w[t].c, b->level, zlib_only, codec);
    if (ret != Z_OK) {
      for (int u = 0; u < t; u++) page_compressor_end(&b->w[u].c);
      free(b);
      throw_zlib(env, ret, "pagezip: setting up a batch compressor failed");
      return NULL;
    }
  }
  pthread_mutex_init(&b->mu, NULL);
  pthread_cond_init(&b->work_cv, NULL);
  pthread_cond_init(&b->done_cv, NULL);
  b->open = 1;
  if (napi_wrap(env, self, b, batch_finalize, NULL, NULL) != napi_ok) {
    batch_end(b);
    free(b);
    throw_last_error(env, "napi_wrap");
    return NULL;
  }
  return self;
}

static BatchDeflater *open_batch(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  BatchDeflater *b = (BatchDeflater *)unwrap_this(env, info, want, argv);
  if (b && !b->open) {
    napi_throw_error(env, "ERR_PAGEZIP_CLOSED", "pagezip: BatchDeflater is closed");
    return NULL;
  }
  return b;
}

/* The typed array of kind `want` in v, or 0 after throwing a TypeError naming `name`. */
static int get_typed(napi_env env, napi_value v, napi_typedarray_type want, const char *name, void **data, size_t *len) {
  napi_typedarray_type type;
  bool is_ta = false;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, v, &type, len, data, NULL, NULL) != napi_ok || type != want) {
    char msg[ERROR_MESSAGE_MAX];
    snprintf(msg, sizeof msg, "pagezip: %s must be a%s", name,
             want == napi_int32_array ? "n Int32Array" : want == napi_uint32_array ? " Uint32Array" : " Float64Array");
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return 0;
  }
  return 1;
}

/*
 * start(src, count, dst, sizes[, crcs]): compresses pages 0..count-1 of src
 * (each pageSize bytes) into the same offsets of dst, and sets sizes[i] to
 * the stream's length, or 0 when it is not strictly smaller than a page
 * (store it raw), or -1 when zlib failed (wait() throws). With crcs (a
 * Uint32Array), crcs[i] is the CRC32 of the bytes stored for the page: the
 * stream, or the page itself when raw. Returns at once; the threads run
 * until wait().
 */
static napi_value batch_start(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  size_t argc = 6;
  napi_value self;
  if (napi_get_cb_info(env, info, &argc, argv, &self, NULL) != napi_ok) {
    throw_last_error(env, "napi_get_cb_info");
    return NULL;
  }
  BatchDeflater *b = open_batch(env, info, 4, argv);
  if (!b) return NULL;
  if (b->running) {
    napi_throw_error(env, "ERR_PAGEZIP_BUSY", "pagezip: a batch is already running: wait() for it first");
    return NULL;
  }
  uint8_t *src, *dst;
  size_t src_len, dst_len;
  int64_t count;
  if (!get_u8(env, argv[0], "src", &src, &src_len) || !get_int(env, argv[1], "count", &count) ||
      !get_u8(env, argv[2], "dst", &dst, &dst_len)) return NULL;
  size_t sizes_len = 0, crcs_len = 0;
  void *sizes = NULL, *crcs = NULL;
  if (!get_typed(env, argv[3], napi_int32_array, "sizes", &sizes, &sizes_len)) return NULL;
  int with_crcs = 0;
  if (argc >= 5) {
    napi_valuetype t;
    if (napi_typeof(env, argv[4], &t) != napi_ok) { throw_last_error(env, "napi_typeof"); return NULL; }
    if (t != napi_undefined) {
      if (!get_typed(env, argv[4], napi_uint32_array, "crcs", &crcs, &crcs_len)) return NULL;
      with_crcs = 1;
    }
  }
  size_t lengths_len = 0;
  void *lengths = NULL;
  if (argc >= 6) {
    napi_valuetype t;
    if (napi_typeof(env, argv[5], &t) != napi_ok) { throw_last_error(env, "napi_typeof"); return NULL; }
    if (t != napi_undefined) {
#ifndef PAGEZIP_LZ4
      napi_throw_error(env, "ERR_PAGEZIP_NO_LZ4", "pagezip: LZ4 inputs asked for, but the addon was built without liblz4 (liblz4-dev)");
      return NULL;
#endif
      if (!get_typed(env, argv[5], napi_int32_array, "lengths", &lengths, &lengths_len)) return NULL;
    }
  }
  size_t ps = b->page_size;
  if (count < 0 || (size_t)count > src_len / ps || (size_t)count > dst_len / ps || (size_t)count > sizes_len ||
      (with_crcs && (size_t)count > crcs_len) || (lengths && (size_t)count > lengths_len)) {
    char msg[ERROR_MESSAGE_MAX];
    snprintf(msg, sizeof msg, "pagezip: %lld pages do not fit src (%zu bytes), dst (%zu bytes), sizes (%zu) or crcs (%zu)",
             (long long)count, src_len, dst_len, sizes_len, crcs_len);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
    return NULL;
  }
  const int held[5] = {0, 2, 3, 4, 5};
  for (int i = 0; i < 5; i++) {
    if ((i == 3 && !with_crcs) || (i == 4 && !lengths)) continue;
    if (napi_create_reference(env, argv[held[i]], 1, &b->refs[i]) != napi_ok) {
      for (int j = 0; j < i; j++) if (b->refs[j]) napi_delete_reference(env, b->refs[j]);
      memset(b->refs, 0, sizeof b->refs);
      throw_last_error(env, "napi_create_reference");
      return NULL;
    }
  }
  b->src = src;
  b->dst = dst;
  b->sizes = (int32_t *)sizes;
  b->crcs = with_crcs ? (uint32_t *)crcs : NULL;
  b->lengths = (const int32_t *)lengths;
  if (lengths) {
    for (int t = 0; t <= b->threads; t++) {
      if (!b->w[t].page) b->w[t].page = (uint8_t *)malloc(ps);
      if (!b->w[t].page) {
        for (int i = 0; i < 5; i++) { if (b->refs[i]) napi_delete_reference(env, b->refs[i]); b->refs[i] = NULL; }
        napi_throw_error(env, "Z_MEM_ERROR", "pagezip: out of memory");
        return NULL;
      }
    }
  }
  b->count = (size_t)count;
  b->next = 0;
  b->running = 1;
  for (int t = 0; t <= b->threads; t++) b->w[t].error = 0;
  batch_pool_start(b);
  if (b->pool > 0) {
    pthread_mutex_lock(&b->mu);
    b->busy = b->pool;
    b->gen++;
    pthread_cond_broadcast(&b->work_cv);
    pthread_mutex_unlock(&b->mu);
  } else {
    /* No thread could start: do the batch here, so the pages are never left undone. */
    batch_run(&b->w[0]);
  }
  return NULL;
}

static napi_value batch_wait(napi_env env, napi_callback_info info) {
  BatchDeflater *b = open_batch(env, info, 0, NULL);
  if (!b) return NULL;
  int64_t err = batch_join(env, b);
  if (err == PAGEZIP_E_LZ4) {
    napi_throw_error(env, "ERR_LZ4_CORRUPT", "corrupt LZ4 block: an input page of the batch does not decode to one page (its sizes[] entry is -1)");
  } else if (err) {
    char msg[ERROR_MESSAGE_MAX];
    snprintf(msg, sizeof msg, "zlib deflate failed in a batch: %s", zlib_code_name((int)err));
    throw_zlib(env, (int)err, msg);
  }
  return NULL;
}

static napi_value batch_close(napi_env env, napi_callback_info info) {
  BatchDeflater *b = (BatchDeflater *)unwrap_this(env, info, 0, NULL);
  if (!b) return NULL;
  batch_join(env, b);
  batch_end(b);
  return NULL;
}

/* --- BatchInflater ------------------------------------------------------------ */

typedef struct BatchInflater BatchInflater;

typedef struct {
  BatchInflater *b;
#ifdef PAGEZIP_LIBDEFLATE
  struct libdeflate_decompressor *ld;
#endif
  z_stream strm;
  int zopen;
  int zdirty;
  pthread_t tid;
  int started;
} InflateWorker;

struct BatchInflater {
  int threads;
  int open;
  int running;
  size_t page_size;
  InflateWorker w[PAGEZIP_MAX_THREADS];
  const uint8_t *src;
  size_t src_len;
  const uint32_t *offsets;
  const uint32_t *lengths;
  uint8_t *dst;
  int32_t *results;
  size_t count;
  size_t next;
  napi_ref refs[5];
};

/* One stream into one page: the bytes produced, or -1 when the stream is refused. */
static int64_t inflate_one(InflateWorker *w, const uint8_t *src, size_t len, uint8_t *dst, size_t ps) {
#ifdef PAGEZIP_LIBDEFLATE
  if (w->ld) return fast_inflate(w->ld, src, len, dst, ps);
#endif
  if (!w->zopen) return -1;
  if (w->zdirty && inflateReset(&w->strm) != Z_OK) return -1;
  w->zdirty = 1;
  w->strm.next_in = (Bytef *)src;
  w->strm.avail_in = (uInt)len;
  w->strm.next_out = dst;
  w->strm.avail_out = (uInt)ps;
  int ret = inflate(&w->strm, Z_FINISH);
  if (ret != Z_STREAM_END || w->strm.avail_in != 0) return -1;
  return (int64_t)w->strm.total_out;
}

static void inflate_run(InflateWorker *w) {
  BatchInflater *b = w->b;
  const size_t ps = b->page_size;
  for (;;) {
    size_t first = __atomic_fetch_add(&b->next, PAGEZIP_GRAIN, __ATOMIC_RELAXED);
    if (first >= b->count) return;
    size_t end = first + PAGEZIP_GRAIN < b->count ? first + PAGEZIP_GRAIN : b->count;
    for (size_t i = first; i < end; i++) {
      b->results[i] = (int32_t)inflate_one(w, b->src + b->offsets[i], b->lengths[i], b->dst + i * ps, ps);
    }
  }
}

static void *inflate_thread(void *arg) {
  inflate_run((InflateWorker *)arg);
  return NULL;
}

static void inflate_join(napi_env env, BatchInflater *b) {
  if (!b->running) return;
  for (int t = 0; t < b->threads; t++) {
    if (b->w[t].started) pthread_join(b->w[t].tid, NULL);
    b->w[t].started = 0;
  }
  b->running = 0;
  if (env) {
    for (int i = 0; i < 5; i++) {
      if (b->refs[i]) napi_delete_reference(env, b->refs[i]);
      b->refs[i] = NULL;
    }
  }
}

static void inflate_end(BatchInflater *b) {
  if (!b->open) return;
  for (int t = 0; t < b->threads; t++) {
#ifdef PAGEZIP_LIBDEFLATE
    if (b->w[t].ld) libdeflate_free_decompressor(b->w[t].ld);
    b->w[t].ld = NULL;
#endif
    if (b->w[t].zopen) inflateEnd(&b->w[t].strm);
    b->w[t].zopen = 0;
  }
  b->open = 0;
}

static void binflate_finalize(napi_env env, void *data, void *hint) {
  BatchInflater *b = (BatchInflater *)data;
  inflate_join(NULL, b);
  inflate_end(b);
  free(b);
}

static napi_value binflate_new(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_value self;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, &self, NULL));
  napi_value target = NULL;
  NAPI_CALL(env, napi_get_new_target(env, info, &target));
  if (target == NULL) {
    napi_throw_type_error(env, "ERR_CONSTRUCT_CALL_REQUIRED", "pagezip: BatchInflater must be called with new");
    return NULL;
  }
  if (argc < 2) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "pagezip: BatchInflater(threads, pageSize)");
    return NULL;
  }
  int64_t threads, page_size;
  if (!get_int(env, argv[0], "threads", &threads) || !get_int(env, argv[1], "pageSize", &page_size)) return NULL;
  if (threads < 1 || threads > PAGEZIP_MAX_THREADS || page_size < 2 || page_size > (1 << 20)) {
    char msg[ERROR_MESSAGE_MAX];
    snprintf(msg, sizeof msg, "pagezip: BatchInflater(%lld, %lld): threads 1..%d, page size 2..1 MiB",
             (long long)threads, (long long)page_size, PAGEZIP_MAX_THREADS);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
    return NULL;
  }
  BatchInflater *b = (BatchInflater *)calloc(1, sizeof *b);
  if (!b) {
    napi_throw_error(env, "Z_MEM_ERROR", "pagezip: out of memory");
    return NULL;
  }
  b->threads = (int)threads;
  b->page_size = (size_t)page_size;
  for (int t = 0; t < b->threads; t++) {
    InflateWorker *w = &b->w[t];
    w->b = b;
#ifdef PAGEZIP_LIBDEFLATE
    w->ld = libdeflate_alloc_decompressor();
    if (w->ld) continue;
#endif
    w->zopen = inflateInit2(&w->strm, PAGEZIP_WINDOW_BITS) == Z_OK;
  }
  b->open = 1;
  if (napi_wrap(env, self, b, binflate_finalize, NULL, NULL) != napi_ok) {
    inflate_end(b);
    free(b);
    throw_last_error(env, "napi_wrap");
    return NULL;
  }
  return self;
}

static BatchInflater *open_binflate(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  BatchInflater *b = (BatchInflater *)unwrap_this(env, info, want, argv);
  if (b && !b->open) {
    napi_throw_error(env, "ERR_PAGEZIP_CLOSED", "pagezip: BatchInflater is closed");
    return NULL;
  }
  return b;
}

/*
 * start(src, offsets, lengths, count, dst, results): inflates the zlib
 * streams src[offsets[i], offsets[i] + lengths[i]) for i < count into
 * page i of dst; results[i] is the bytes the stream gave (the caller checks
 * it is a whole page), or -1 when it was refused (inflate that one alone for
 * zlib's reason). Returns at once; the threads run until wait().
 */
static napi_value binflate_start(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  BatchInflater *b = open_binflate(env, info, 6, argv);
  if (!b) return NULL;
  if (b->running) {
    napi_throw_error(env, "ERR_PAGEZIP_BUSY", "pagezip: a batch is already running: wait() for it first");
    return NULL;
  }
  uint8_t *src, *dst;
  size_t src_len, dst_len, off_len, len_len, res_len;
  void *offsets, *lengths, *results;
  int64_t count;
  if (!get_u8(env, argv[0], "src", &src, &src_len) ||
      !get_typed(env, argv[1], napi_uint32_array, "offsets", &offsets, &off_len) ||
      !get_typed(env, argv[2], napi_uint32_array, "lengths", &lengths, &len_len) ||
      !get_int(env, argv[3], "count", &count) || !get_u8(env, argv[4], "dst", &dst, &dst_len) ||
      !get_typed(env, argv[5], napi_int32_array, "results", &results, &res_len)) return NULL;
  size_t ps = b->page_size;
  if (count < 0 || (size_t)count > off_len || (size_t)count > len_len || (size_t)count > res_len || (size_t)count > dst_len / ps) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "pagezip: count exceeds offsets, lengths, results or dst");
    return NULL;
  }
  const uint32_t *o = (const uint32_t *)offsets, *l = (const uint32_t *)lengths;
  for (size_t i = 0; i < (size_t)count; i++) {
    if ((size_t)o[i] > src_len || (size_t)l[i] > src_len - o[i]) {
      char msg[ERROR_MESSAGE_MAX];
      snprintf(msg, sizeof msg, "pagezip: stream %zu [%u, +%u) lies outside src (%zu bytes)", i, o[i], l[i], src_len);
      napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
      return NULL;
    }
  }
  const int held[5] = {0, 1, 2, 4, 5};
  for (int i = 0; i < 5; i++) {
    if (napi_create_reference(env, argv[held[i]], 1, &b->refs[i]) != napi_ok) {
      for (int j = 0; j < i; j++) napi_delete_reference(env, b->refs[j]);
      memset(b->refs, 0, sizeof b->refs);
      throw_last_error(env, "napi_create_reference");
      return NULL;
    }
  }
  b->src = src;
  b->src_len = src_len;
  b->offsets = o;
  b->lengths = l;
  b->dst = dst;
  b->results = (int32_t *)results;
  b->count = (size_t)count;
  b->next = 0;
  b->running = 1;
  int started = 0;
  /* Small batches are not worth a thread each. */
  int want_threads = count < 2 * PAGEZIP_GRAIN ? 1 : b->threads;
  for (int t = 0; t < want_threads; t++) {
    b->w[t].started = pthread_create(&b->w[t].tid, NULL, inflate_thread, &b->w[t]) == 0;
    started += b->w[t].started;
  }
  if (started == 0) inflate_run(&b->w[0]);
  return NULL;
}

static napi_value binflate_wait(napi_env env, napi_callback_info info) {
  BatchInflater *b = open_binflate(env, info, 0, NULL);
  if (!b) return NULL;
  inflate_join(env, b);
  return NULL;
}

static napi_value binflate_close(napi_env env, napi_callback_info info) {
  BatchInflater *b = (BatchInflater *)unwrap_this(env, info, 0, NULL);
  if (!b) return NULL;
  inflate_join(env, b);
  inflate_end(b);
  return NULL;
}

/* crc32(buf[, crc]): the CRC32 of buf, continuing from crc (default 0). */
static napi_value crc32_fn(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "pagezip: crc32(buf[, crc])");
    return NULL;
  }
  uint8_t *p;
  size_t n;
  if (!get_u8(env, argv[0], "buf", &p, &n)) return NULL;
  uint32_t crc = 0;
  if (argc >= 2) {
    int64_t c;
    if (!get_int(env, argv[1], "crc", &c)) return NULL;
    crc = (uint32_t)c;
  }
  return make_u32(env, page_crc32(crc, p, n));
}

/*
 * crc32Split(buf, split, out): out[0] = CRC32 of buf[split..], out[1] = CRC32
 * of all of buf. A page record is its header then its data: one call gives
 * the data's check (stage 1's record table) and the record's (the checksum
 * extension).
 */
static napi_value crc32_split_fn(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "pagezip: crc32Split(buf, split, out)");
    return NULL;
  }
  uint8_t *p;
  size_t n, out_len;
  int64_t split;
  void *out;
  if (!get_u8(env, argv[0], "buf", &p, &n) || !get_int(env, argv[1], "split", &split) ||
      !get_typed(env, argv[2], napi_uint32_array, "out", &out, &out_len)) return NULL;
  if (split < 0 || (size_t)split > n || out_len < 2) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "pagezip: crc32Split: split outside buf, or out shorter than 2");
    return NULL;
  }
  uint32_t *o = (uint32_t *)out;
  o[0] = page_crc32(0, p + split, n - (size_t)split);
  o[1] = page_crc32(0, p, n);
  return NULL;
}

/* --- LZ4 single pages ------------------------------------------------------------ */

#ifdef PAGEZIP_LZ4
/*
 * The input offset of a match offset 0 in the LZ4 block src, or -1 when
 * there is none. The block format calls offset 0 corrupt; LZ4 1.9.4's
 * LZ4_decompress_safe accepts it (later versions zero the match instead).
 * This walks the sequences the way the decoder does, bounded by len; a
 * block it cannot walk is left to the decoder to refuse.
 */
static int64_t lz4_zero_offset(const uint8_t *src, size_t len) {
  size_t ip = 0;
  while (ip < len) {
    unsigned token = src[ip++];
    size_t lit = token >> 4;
    if (lit == 15) {
      unsigned b;
      do {
        if (ip >= len) return -1;
        b = src[ip++];
        lit += b;
      } while (b == 255);
    }
    if (lit > len - ip) return -1;
    ip += lit;
    if (ip == len) return -1; /* the last sequence: literals only */
    if (len - ip < 2) return -1;
    if (src[ip] == 0 && src[ip + 1] == 0) return (int64_t)ip;
    ip += 2;
    if ((token & 15) == 15) {
      unsigned b;
      do {
        if (ip >= len) return -1;
        b = src[ip++];
      } while (b == 255);
    }
  }
  return -1;
}

/* The (src, dst) arguments of a one-block call; 0 after throwing (`usage` names the call). */
static int get_src_dst(napi_env env, napi_callback_info info, const char *usage, uint8_t **src, size_t *src_len, uint8_t **dst, size_t *dst_len) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    throw_last_error(env, "napi_get_cb_info");
    return 0;
  }
  if (argc < 2) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", usage);
    return 0;
  }
  return get_u8(env, argv[0], "src", src, src_len) && get_u8(env, argv[1], "dst", dst, dst_len);
}

/*
 * lz4Compress(src, dst): src as one LZ4 block into dst, which must hold at
 * least src.length - 1 bytes; the block's length, or 0 when it would not be
 * strictly smaller than src (store the page raw).
 */
static napi_value lz4_compress_fn(napi_env env, napi_callback_info info) {
  uint8_t *src, *dst;
  size_t src_len, dst_len;
  if (!get_src_dst(env, info, "pagezip: lz4Compress(src, dst)", &src, &src_len, &dst, &dst_len)) return NULL;
  if (src_len > LZ4_MAX_INPUT_SIZE) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "pagezip: lz4Compress: src is larger than LZ4_MAX_INPUT_SIZE");
    return NULL;
  }
  if (!dst_room(env, src_len, dst_len, "compressing")) return NULL;
  if (src_len == 0) return make_u32(env, 0);
  int n = LZ4_compress_default((const char *)src, (char *)dst, (int)src_len, (int)(src_len - 1));
  return make_u32(env, n > 0 ? (uint32_t)n : 0);
}

/*
 * lz4Decompress(src, dst): src must be exactly one LZ4 block whose data
 * fits in dst; returns the bytes written to dst. A corrupt, truncated or
 * oversized block throws an Error with code ERR_LZ4_CORRUPT; nothing is
 * read or written outside src and dst (LZ4_decompress_safe's guarantee).
 */
static napi_value lz4_decompress_fn(napi_env env, napi_callback_info info) {
  uint8_t *src, *dst;
  size_t src_len, dst_len;
  if (!get_src_dst(env, info, "pagezip: lz4Decompress(src, dst)", &src, &src_len, &dst, &dst_len)) return NULL;
  if (src_len > INT_MAX || dst_len > INT_MAX) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "pagezip: lz4Decompress: buffer larger than 2 GiB - 1");
    return NULL;
  }
  char msg[ERROR_MESSAGE_MAX];
  int64_t zero = lz4_zero_offset(src, src_len);
  if (zero >= 0) {
    snprintf(msg, sizeof msg, "corrupt LZ4 block: match offset 0 at input byte %lld of %zu", (long long)zero, src_len);
    napi_throw_error(env, "ERR_LZ4_CORRUPT", msg);
    return NULL;
  }
  int n = LZ4_decompress_safe((const char *)src, (char *)dst, (int)src_len, (int)dst_len);
  if (n < 0) {
    /* The decoder returns -(input position of the error) - 1. */
    snprintf(msg, sizeof msg, "corrupt LZ4 block: LZ4_decompress_safe refuses it at input byte %d of %zu (output room %zu bytes)",
             -n - 1, src_len, dst_len);
    napi_throw_error(env, "ERR_LZ4_CORRUPT", msg);
    return NULL;
  }
  return make_u32(env, (uint32_t)n);
}
#endif

/* --- module ----------------------------------------------------------------- */

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor deflater_methods[] = {
    {"deflate", NULL, deflater_deflate, NULL, NULL, NULL, napi_default_method, NULL},
    {"close", NULL, deflater_close, NULL, NULL, NULL, napi_default_method, NULL},
  };
  napi_property_descriptor inflater_methods[] = {
    {"inflate", NULL, inflater_inflate, NULL, NULL, NULL, napi_default_method, NULL},
    {"close", NULL, inflater_close, NULL, NULL, NULL, napi_default_method, NULL},
  };
  napi_property_descriptor batch_methods[] = {
    {"start", NULL, batch_start, NULL, NULL, NULL, napi_default_method, NULL},
    {"wait", NULL, batch_wait, NULL, NULL, NULL, napi_default_method, NULL},
    {"close", NULL, batch_close, NULL, NULL, NULL, napi_default_method, NULL},
  };
  napi_property_descriptor binflate_methods[] = {
    {"start", NULL, binflate_start, NULL, NULL, NULL, napi_default_method, NULL},
    {"wait", NULL, binflate_wait, NULL, NULL, NULL, napi_default_method, NULL},
    {"close", NULL, binflate_close, NULL, NULL, NULL, napi_default_method, NULL},
  };
  napi_value deflater_class, inflater_class, batch_class, binflate_class, crc_fn, split_fn, version, engine;
  NAPI_CALL(env, napi_define_class(env, "BatchInflater", NAPI_AUTO_LENGTH, binflate_new, NULL,
                                   sizeof binflate_methods / sizeof binflate_methods[0], binflate_methods, &binflate_class));
  NAPI_CALL(env, napi_create_function(env, "crc32", NAPI_AUTO_LENGTH, crc32_fn, NULL, &crc_fn));
  NAPI_CALL(env, napi_create_function(env, "crc32Split", NAPI_AUTO_LENGTH, crc32_split_fn, NULL, &split_fn));
  NAPI_CALL(env, napi_define_class(env, "BatchDeflater", NAPI_AUTO_LENGTH, batch_new, NULL,
                                   sizeof batch_methods / sizeof batch_methods[0], batch_methods, &batch_class));
#ifdef PAGEZIP_LIBDEFLATE
  NAPI_CALL(env, napi_create_string_utf8(env, "libdeflate", NAPI_AUTO_LENGTH, &engine));
#else
  NAPI_CALL(env, napi_create_string_utf8(env, "zlib", NAPI_AUTO_LENGTH, &engine));
#endif
  NAPI_CALL(env, napi_define_class(env, "Deflater", NAPI_AUTO_LENGTH, deflater_new, NULL,
                                   sizeof deflater_methods / sizeof deflater_methods[0], deflater_methods,
                                   &deflater_class));
  NAPI_CALL(env, napi_define_class(env, "Inflater", NAPI_AUTO_LENGTH, inflater_new, NULL,
                                   sizeof inflater_methods / sizeof inflater_methods[0], inflater_methods,
                                   &inflater_class));
  NAPI_CALL(env, napi_create_string_utf8(env, zlibVersion(), NAPI_AUTO_LENGTH, &version));
  napi_property_descriptor props[] = {
    {"Deflater", NULL, NULL, NULL, NULL, deflater_class, napi_enumerable, NULL},
    {"Inflater", NULL, NULL, NULL, NULL, inflater_class, napi_enumerable, NULL},
    {"BatchDeflater", NULL, NULL, NULL, NULL, batch_class, napi_enumerable, NULL},
    {"BatchInflater", NULL, NULL, NULL, NULL, binflate_class, napi_enumerable, NULL},
    {"crc32", NULL, NULL, NULL, NULL, crc_fn, napi_enumerable, NULL},
    {"crc32Split", NULL, NULL, NULL, NULL, split_fn, napi_enumerable, NULL},
    {"zlibVersion", NULL, NULL, NULL, NULL, version, napi_enumerable, NULL},
    {"engine", NULL, NULL, NULL, NULL, engine, napi_enumerable, NULL},
  };
  NAPI_CALL(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
#ifdef PAGEZIP_LZ4
  napi_value lz4c_fn, lz4d_fn, lz4_version;
  NAPI_CALL(env, napi_create_function(env, "lz4Compress", NAPI_AUTO_LENGTH, lz4_compress_fn, NULL, &lz4c_fn));
  NAPI_CALL(env, napi_create_function(env, "lz4Decompress", NAPI_AUTO_LENGTH, lz4_decompress_fn, NULL, &lz4d_fn));
  NAPI_CALL(env, napi_create_string_utf8(env, LZ4_versionString(), NAPI_AUTO_LENGTH, &lz4_version));
  napi_property_descriptor lz4_props[] = {
    {"lz4Compress", NULL, NULL, NULL, NULL, lz4c_fn, napi_enumerable, NULL},
    {"lz4Decompress", NULL, NULL, NULL, NULL, lz4d_fn, napi_enumerable, NULL},
    {"lz4Version", NULL, NULL, NULL, NULL, lz4_version, napi_enumerable, NULL},
  };
  NAPI_CALL(env, napi_define_properties(env, exports, sizeof lz4_props / sizeof lz4_props[0], lz4_props));
#endif
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
