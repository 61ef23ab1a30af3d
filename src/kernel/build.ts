import fs from 'node:fs';
import path from 'node:path';
import { CorruptDumpError } from '../codec/index.js';
import { writeFileAtomic } from '../machine/index.js';
import { buildIdHex, elfFileBuildId } from './build_id.js';
import { buildKernelImage, encodeKernelElf, type TextSource } from './image.js';
import { kerntypesJson } from './kerntypes.js';
import { kernelLayout, type KernelConfig, type KernelLayout } from './layout.js';
import { cachedVmlinux, installVmlinux, setImageBuildId, vmlinuxSource } from './vmlinux/build.js';

export interface KernelBuildFiles {
  vmlinuz: string;
  systemMap: string;
  kerntypes: string;
  /** The debug vmlinux (ELF with DWARF), when it could be built. */
  vmlinux: string;
  /** Why there is no vmlinux, said once per release and reason (see buildKernel). */
  vmlinuxUnavailable: string;
}

export function buildFileNames(bootDir: string, release: string): KernelBuildFiles {
  return {
    vmlinuz: path.join(bootDir, `vmlinuz-${release}`),
    systemMap: path.join(bootDir, `System.map-${release}`),
    kerntypes: path.join(bootDir, `Kerntypes-${release}`),
    vmlinux: path.join(bootDir, `vmlinux-${release}`),
    vmlinuxUnavailable: path.join(bootDir, `.vmlinux-${release}.unavailable`),
  };
}

/** System.map: one "address type name" line per symbol, sorted by address (as nm -n prints). */
export function systemMapText(layout: KernelLayout): string {
  return layout.symbols.map((s) => `${s.address.toString(16).padStart(16, '0')} ${s.type} ${s.name}\n`).join('');
}

export interface BuildKernelOptions {
  /** Told, once per release and reason, when no vmlinux could be built (gcc missing). */
  onNote?: (line: string) => void;
  /** The vmlinux build cache (default vmlinuxCacheDir()). */
  cacheDir?: string;
}

/** The build ID of a file the build wrote before, or null when it is missing or not an ELF (then it is rebuilt). */
function buildIdOrNull(file: string): string | null {
  if (!fs.existsSync(file)) return null;
  try {
    return elfFileBuildId(file);
  } catch (e) {
    if (e instanceof CorruptDumpError) return null;
    throw e;
  }
}

/**
 * A simulated `make bzImage modules_install install`: writes vmlinuz,
 * System.map and Kerntypes for the configuration into `bootDir`, and the
 * debug vmlinux beside them. The build is identified by its build ID (a hash
 * of the image and of the vmlinux's generated C and linker script): files
 * already there with that ID are kept, so a build happens once per change of
 * any structure, symbol or byte, not once per boot. The vmlinux comes from a
 * cache shared by machine roots (see cachedVmlinux); when it cannot be built
 * (no gcc), power-on goes on without it and `onNote` hears why, once.
 * `source(maxBytes)` gives the text and rodata; bytes past maxBytes are never used.
 */
export function buildKernel(bootDir: string, config: KernelConfig, source: (maxBytes: number) => TextSource, opts: BuildKernelOptions = {}): KernelBuildFiles {
  const files = buildFileNames(bootDir, config.release);
  // The image uses the first section-size bytes of each source section (repeated when shorter): no more is read.
  const { text, rodata } = kernelLayout(config).sections;
  const image = buildKernelImage(config, source(Math.max(text.size, rodata.size)));
  const src = vmlinuxSource(image);
  setImageBuildId(image, src.buildId);
  const id = buildIdHex(src.buildId);
  if (buildIdOrNull(files.vmlinuz) !== id || !fs.existsSync(files.systemMap) || !fs.existsSync(files.kerntypes)) {
    writeFileAtomic(files.vmlinuz, encodeKernelElf(image), 0o644);
    writeFileAtomic(files.systemMap, systemMapText(kernelLayout(config)), 0o644);
    writeFileAtomic(files.kerntypes, kerntypesJson(config.release), 0o644);
  }
  if (buildIdOrNull(files.vmlinux) === id) return files;
  const built = cachedVmlinux(image, src, { cacheDir: opts.cacheDir });
  if (built.ok) {
    installVmlinux(built.file, files.vmlinux);
    fs.rmSync(files.vmlinuxUnavailable, { force: true });
    return files;
  }
  // A vmlinux of another build must not stay beside this one's vmlinuz.
  fs.rmSync(files.vmlinux, { force: true });
  const said = fs.existsSync(files.vmlinuxUnavailable) ? fs.readFileSync(files.vmlinuxUnavailable, 'utf8').trim() : null;
  if (said !== built.reason) {
    writeFileAtomic(files.vmlinuxUnavailable, `${built.reason}\n`, 0o644);
    opts.onNote?.(`no debug vmlinux for ${config.release} (${built.reason}): the machine runs without it; drgn, gdb and crash have no types for its dumps`);
  }
  return files;
}
