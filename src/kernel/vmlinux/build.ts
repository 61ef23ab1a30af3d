import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Elf64_Ehdr, Elf64_Phdr, InternalError, ioError, PT_LOAD, viewOf } from '../../codec/index.js';
import { ensureDir, fsyncDir } from '../../machine/index.js';
import { BUILD_ID_SIZE, buildIdHex, elfFileBuildId } from '../build_id.js';
import type { KernelImage } from '../image.js';
import { buildIdOffset } from '../image_statics.js';
import { KERNEL_STRUCTS } from '../kerntypes.js';
import { vmlinuxCSource } from './csource.js';
import { vmlinuxLinkerScript } from './ldscript.js';
import { planVmlinux } from './plan.js';

/**
 * gcc flags: DWARF 4 (what 5.4 kernels and crash's gdb 10 read), no
 * optimisation or unwind tables (there is no code to describe), every type
 * kept even when no variable uses it (the enums), data aligned by the ABI
 * only so each variable can sit at its System.map offset.
 */
const CFLAGS = [
  '-c', '-g', '-gdwarf-4', '-O0', '-malign-data=abi', '-ffreestanding', '-fno-pic', '-fno-pie', '-mcmodel=kernel',
  '-fno-common', '-fno-asynchronous-unwind-tables', '-fno-eliminate-unused-debug-types', '-fno-stack-protector', '-Werror',
];
const LDFLAGS = ['-nostdlib', '-nostartfiles', '-static', '-no-pie', '-Wl,-z,max-page-size=0x1000', '-Wl,-z,noexecstack'];
/** Seconds a compile or link may take before it counts as failed. */
const TOOL_TIMEOUT_S = 120;

/** The generated sources of a build's vmlinux and the build ID they and the image give. */
export interface VmlinuxSource {
  c: string;
  lds: string;
  buildId: Uint8Array;
}

/**
 * The C and the linker script of `image`'s vmlinux, and its build ID: the
 * SHA-1 of both, the compiler flags, and the image's loadable bytes with the
 * build-ID descriptor zero (as ld hashes its output with the note zeroed).
 */
export function vmlinuxSource(image: KernelImage): VmlinuxSource {
  const plan = planVmlinux(image.layout);
  const c = vmlinuxCSource(plan, KERNEL_STRUCTS);
  const lds = vmlinuxLinkerScript(plan);
  const h = crypto.createHash('sha1');
  h.update(`lkcd-softboot vmlinux 1\0${CFLAGS.join(' ')}\0${LDFLAGS.join(' ')}\0${c}\0${lds}\0`);
  const first = image.segments[0].bytes;
  const at = buildIdOffset(image.layout);
  for (const s of image.segments) {
    if (s === image.segments[0]) {
      h.update(first.subarray(0, at));
      h.update(new Uint8Array(BUILD_ID_SIZE));
      h.update(first.subarray(at + BUILD_ID_SIZE));
    } else {
      h.update(s.bytes);
    }
  }
  return { c, lds, buildId: new Uint8Array(h.digest()) };
}

/** Writes the build ID into the image's note (its descriptor), so the loaded kernel carries it. */
export function setImageBuildId(image: KernelImage, id: Uint8Array): void {
  if (id.length !== BUILD_ID_SIZE) throw new InternalError(`build ID of ${id.length} bytes`);
  image.segments[0].bytes.set(id, buildIdOffset(image.layout));
}

/** Where built vmlinux files are kept between machine roots: $LKCD_CACHE_DIR, else $XDG_CACHE_HOME/lkcd-softboot, else ~/.cache/lkcd-softboot. */
export function vmlinuxCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.LKCD_CACHE_DIR) return path.resolve(env.LKCD_CACHE_DIR);
  const base = env.XDG_CACHE_HOME ? env.XDG_CACHE_HOME : path.join(os.homedir(), '.cache');
  return path.join(base, 'lkcd-softboot');
}

/** The C compiler: $LKCD_CC, else gcc. */
export function compilerOf(env: NodeJS.ProcessEnv = process.env): string {
  return env.LKCD_CC || 'gcc';
}

export type VmlinuxOutcome =
  | { ok: true; file: string; fresh: boolean }
  | { ok: false; reason: string };

function run(cmd: string, args: string[], cwd: string): { ok: true } | { ok: false; reason: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: TOOL_TIMEOUT_S * 1000, stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    return { ok: false, reason: code === 'ENOENT' ? `${cmd} not found` : `${cmd}: ${r.error.message}` };
  }
  if (r.status !== 0) {
    const first = `${r.stderr}${r.stdout}`.split('\n').find((l) => l.trim() !== '') ?? `exit status ${r.status}`;
    return { ok: false, reason: `${cmd} ${args[0] === '-c' ? 'compile' : 'link'} failed: ${first.trim()}` };
  }
  return { ok: true };
}

/**
 * Overwrites the contents of each PT_LOAD of the linked vmlinux with the
 * image's bytes at the same address, so the debug vmlinux holds exactly what
 * vmlinuz loads (its code, kallsyms, linux_banner, initialised data).
 */
function patchLoads(file: string, image: KernelImage): void {
  const bytes = fs.readFileSync(file);
  const view = viewOf(bytes);
  const eh = Elf64_Ehdr.decode(view, 0);
  let patched = 0;
  for (let i = 0; i < eh.e_phnum; i++) {
    const ph = Elf64_Phdr.decode(view, Number(eh.e_phoff) + i * Elf64_Phdr.size);
    if (ph.p_type !== PT_LOAD) continue;
    const seg = image.segments.find((s) => s.vaddr === ph.p_vaddr);
    if (!seg || ph.p_filesz > BigInt(seg.bytes.length) || ph.p_paddr !== seg.paddr) {
      throw new InternalError(`vmlinux PT_LOAD ${i} at 0x${ph.p_vaddr.toString(16)} does not match a segment of the image`);
    }
    bytes.set(seg.bytes.subarray(0, Number(ph.p_filesz)), Number(ph.p_offset));
    patched++;
  }
  if (patched !== image.segments.length) throw new InternalError(`vmlinux has ${patched} PT_LOADs, the image ${image.segments.length}`);
  fs.writeFileSync(file, bytes);
}

/**
 * The vmlinux of `image` in the cache, built with the C compiler if it is
 * not there yet. The image must already carry `src.buildId`. Concurrent
 * builders each work in their own directory and rename the result into
 * place; the cache file is named by build ID and never rewritten.
 */
export function cachedVmlinux(image: KernelImage, src: VmlinuxSource, opts: { cacheDir?: string; cc?: string } = {}): VmlinuxOutcome {
  const id = buildIdHex(src.buildId);
  const cacheDir = opts.cacheDir ?? vmlinuxCacheDir();
  const cached = path.join(cacheDir, `vmlinux-${image.layout.config.release}-${id}`);
  if (fs.existsSync(cached) && elfFileBuildId(cached) === id) return { ok: true, file: cached, fresh: false };
  let work: string;
  try {
    ensureDir(cacheDir, 0o755);
    work = fs.mkdtempSync(path.join(cacheDir, '.build-'));
  } catch (e) {
    return { ok: false, reason: `cannot build in the cache ${cacheDir}: ${(e as Error).message}` };
  }
  try {
    fs.writeFileSync(path.join(work, 'vmlinux.c'), src.c);
    fs.writeFileSync(path.join(work, 'vmlinux.lds'), src.lds);
    const cc = opts.cc ?? compilerOf();
    const compiled = run(cc, [...CFLAGS, '-o', 'vmlinux.o', 'vmlinux.c'], work);
    if (!compiled.ok) return compiled;
    const linked = run(cc, [...LDFLAGS, '-Wl,-T,vmlinux.lds', `-Wl,--build-id=0x${id}`, '-o', 'vmlinux', 'vmlinux.o'], work);
    if (!linked.ok) return linked;
    const out = path.join(work, 'vmlinux');
    patchLoads(out, image);
    const got = elfFileBuildId(out);
    if (got !== id) throw new InternalError(`built vmlinux has build ID ${got}, expected ${id}`);
    fs.chmodSync(out, 0o644);
    const fd = fs.openSync(out, 'r');
    try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
    fs.renameSync(out, cached);
    fsyncDir(cacheDir);
    return { ok: true, file: cached, fresh: true };
  } catch (e) {
    if (e instanceof InternalError) throw e;
    return { ok: false, reason: `building the vmlinux in ${work}: ${(e as Error).message}` };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Puts a copy of the cached file at `dest`, atomically. A copy (a reflink
 * where the file system has them), not a hard link: a write through one
 * machine root's boot/vmlinux must not reach the cache or other roots.
 */
export function installVmlinux(cached: string, dest: string): void {
  const tmp = path.join(path.dirname(dest), `.${path.basename(dest)}.tmp-${process.pid}`);
  try {
    fs.rmSync(tmp, { force: true });
    fs.copyFileSync(cached, tmp, fs.constants.COPYFILE_FICLONE);
    fs.chmodSync(tmp, 0o644);
    const fd = fs.openSync(tmp, 'r');
    try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
    fs.renameSync(tmp, dest);
    fsyncDir(path.dirname(dest));
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw ioError(`installing ${dest}`, e as NodeJS.ErrnoException);
  }
}
