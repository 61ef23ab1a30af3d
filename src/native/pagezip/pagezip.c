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
 *   new BatchDeflater(level, threads)
 *     .start(src, count, dst, sizes)     -> starts compressing count pages of
 *                                           src on `threads` native threads
 *     .wait()                            -> waits for them (throws on error)
 *     .close()
 *   zlibVersion                          -> zlibVersion() of the linked zlib
 *   engine                               -> "libdeflate" or "zlib": what deflates
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

/* Same parameters as deflateInit(), which zlib_deflateInit() mirrors. */
#define PAGEZIP_WINDOW_BITS MAX_WBITS
#define PAGEZIP_MEM_LEVEL 8

#define ERROR_MESSAGE_MAX 256

/* --- one page, either engine --------------------------------------------------- */

/* A compressor of single pages: libdeflate's, or a z_stream reset between pages. */
typedef struct {
#ifdef PAGEZIP_LIBDEFLATE
  struct libdeflate_compressor *ld;
#endif
  z_stream strm;
  int zopen;
  int zdirty;
} PageCompressor;

static int page_compressor_init(PageCompressor *c, int level) {
  memset(c, 0, sizeof *c);
#ifdef PAGEZIP_LIBDEFLATE
  /* libdeflate has no level 0 (store): zlib keeps that one. */
  if (level >= 1) {
    c->ld = libdeflate_alloc_compressor(level);
    return c->ld ? Z_OK : Z_MEM_ERROR;
  }
#endif
  int ret = deflateInit2(&c->strm, level, Z_DEFLATED, PAGEZIP_WINDOW_BITS, PAGEZIP_MEM_LEVEL, Z_DEFAULT_STRATEGY);
  if (ret == Z_OK) c->zopen = 1;
  return ret;
}

static void page_compressor_end(PageCompressor *c) {
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
 */
static int64_t page_compress(PageCompressor *c, const uint8_t *src, size_t src_len, uint8_t *dst) {
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
  int open;
  int dirty;
} Inflater;

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
  size_t argc = 1;
  napi_value argv[1];
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
  int ret = page_compressor_init(&d->c, d->level);
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
  if (src_len > 0 && dst_len < src_len - 1) {
    char msg[ERROR_MESSAGE_MAX];
    snprintf(msg, sizeof msg, "pagezip: dst holds %zu bytes, deflating %zu bytes needs at least %zu",
             dst_len, src_len, src_len - 1);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
    return NULL;
  }
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
  int64_t error; /* 0, or the negative zlib code of a failed page */
} BatchWorker;

struct BatchDeflater {
  int level;
  int threads;
  int open;
  int running;
  size_t page_size;
  BatchWorker w[PAGEZIP_MAX_THREADS];
  /* The batch in flight: its buffers stay referenced until wait(). */
  const uint8_t *src;
  uint8_t *dst;
  int32_t *sizes;
  size_t count;
  size_t next; /* the next page a thread takes (atomic) */
  napi_ref refs[3];
};

static void batch_run(BatchWorker *w) {
  BatchDeflater *b = w->b;
  const size_t ps = b->page_size;
  for (;;) {
    size_t first = __atomic_fetch_add(&b->next, PAGEZIP_GRAIN, __ATOMIC_RELAXED);
    if (first >= b->count) return;
    size_t end = first + PAGEZIP_GRAIN < b->count ? first + PAGEZIP_GRAIN : b->count;
    for (size_t i = first; i < end; i++) {
      int64_t n = page_compress(&w->c, b->src + i * ps, ps, b->dst + i * ps);
      if (n < 0) {
        w->error = n;
        b->sizes[i] = -1;
        continue;
      }
      b->sizes[i] = (int32_t)n;
    }
  }
}

static void *batch_thread(void *arg) {
  batch_run((BatchWorker *)arg);
  return NULL;
}

/* Joins the threads of the batch in flight; returns the first error (0: none). */
static int64_t batch_join(napi_env env, BatchDeflater *b) {
  int64_t err = 0;
  if (!b->running) return 0;
  for (int t = 0; t < b->threads; t++) {
    BatchWorker *w = &b->w[t];
    if (w->started) pthread_join(w->tid, NULL);
    w->started = 0;
    if (w->error && !err) err = w->error;
    w->error = 0;
  }
  b->running = 0;
  if (env) {
    for (int i = 0; i < 3; i++) {
      if (b->refs[i]) napi_delete_reference(env, b->refs[i]);
      b->refs[i] = NULL;
    }
  }
  return err;
}

static void batch_end(BatchDeflater *b) {
  if (!b->open) return;
  for (int t = 0; t < b->threads; t++) page_compressor_end(&b->w[t].c);
  b->open = 0;
}

static void batch_finalize(napi_env env, void *data, void *hint) {
  BatchDeflater *b = (BatchDeflater *)data;
  /* The environment is going away: join without touching references. */
  batch_join(NULL, b);
  batch_end(b);
  free(b);
}

static napi_value batch_new(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_value self;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, &self, NULL));
  napi_value target = NULL;
  NAPI_CALL(env, napi_get_new_target(env, info, &target));
  if (target == NULL) {
    napi_throw_type_error(env, "ERR_CONSTRUCT_CALL_REQUIRED", "pagezip: BatchDeflater must be called with new");
    return NULL;
  }
  if (argc < 3) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "pagezip: BatchDeflater(level, threads, pageSize)");
    return NULL;
  }
  int64_t level, threads, page_size;
  if (!get_int(env, argv[0], "level", &level) || !get_int(env, argv[1], "threads", &threads) ||
      !get_int(env, argv[2], "pageSize", &page_size)) return NULL;
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
  for (int t = 0; t < b->threads; t++) {
    b->w[t].b = b;
    int ret = page_compressor_init(&b->w[t].c, b->level);
    if (ret != Z_OK) {
      for (int u = 0; u < t; u++) page_compressor_end(&b->w[u].c);
      free(b);
      throw_zlib(env, ret, "pagezip: setting up a batch compressor failed");
      return NULL;
    }
  }
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

/*
 * start(src, count, dst, sizes): compresses pages 0..count-1 of src (each
 * pageSize bytes) into the same offsets of dst, and sets sizes[i] to the
 * stream's length, or 0 when it is not strictly smaller than a page (store
 * it raw), or -1 when zlib failed (wait() throws). Returns at once; the
 * threads run until wait().
 */
static napi_value batch_start(napi_env env, napi_callback_info info) {
  napi_value argv[4];
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
  napi_typedarray_type type;
  size_t sizes_len = 0;
  void *sizes = NULL;
  bool is_ta = false;
  if (napi_is_typedarray(env, argv[3], &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, argv[3], &type, &sizes_len, &sizes, NULL, NULL) != napi_ok || type != napi_int32_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "pagezip: sizes must be an Int32Array");
    return NULL;
  }
  size_t ps = b->page_size;
  if (count < 0 || (size_t)count > src_len / ps || (size_t)count > dst_len / ps || (size_t)count > sizes_len) {
    char msg[ERROR_MESSAGE_MAX];
    snprintf(msg, sizeof msg, "pagezip: %lld pages do not fit src (%zu bytes), dst (%zu bytes) or sizes (%zu)",
             (long long)count, src_len, dst_len, sizes_len);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
    return NULL;
  }
  for (int i = 0; i < 3; i++) {
    if (napi_create_reference(env, argv[i == 0 ? 0 : i + 1], 1, &b->refs[i]) != napi_ok) {
      for (int j = 0; j < i; j++) napi_delete_reference(env, b->refs[j]);
      memset(b->refs, 0, sizeof b->refs);
      throw_last_error(env, "napi_create_reference");
      return NULL;
    }
  }
  b->src = src;
  b->dst = dst;
  b->sizes = (int32_t *)sizes;
  b->count = (size_t)count;
  b->next = 0;
  b->running = 1;
  int started = 0;
  for (int t = 0; t < b->threads; t++) {
    b->w[t].error = 0;
    b->w[t].started = pthread_create(&b->w[t].tid, NULL, batch_thread, &b->w[t]) == 0;
    started += b->w[t].started;
  }
  /* No thread could start: do the batch here, so the pages are never left undone. */
  if (started == 0) batch_run(&b->w[0]);
  return NULL;
}

static napi_value batch_wait(napi_env env, napi_callback_info info) {
  BatchDeflater *b = open_batch(env, info, 0, NULL);
  if (!b) return NULL;
  int64_t err = batch_join(env, b);
  if (err) {
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
  napi_value deflater_class, inflater_class, batch_class, version, engine;
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
    {"zlibVersion", NULL, NULL, NULL, NULL, version, napi_enumerable, NULL},
    {"engine", NULL, NULL, NULL, NULL, engine, napi_enumerable, NULL},
  };
  NAPI_CALL(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
