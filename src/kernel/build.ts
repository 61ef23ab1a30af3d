import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../machine/index.js';
import { buildKernelImage, encodeKernelElf, type TextSource } from './image.js';
import { kerntypesJson } from './kerntypes.js';
import { kernelLayout, type KernelConfig, type KernelLayout } from './layout.js';

export interface KernelBuildFiles {
  vmlinuz: string;
  systemMap: string;
  kerntypes: string;
}

export function buildFileNames(bootDir: string, release: string): KernelBuildFiles {
  return {
    vmlinuz: path.join(bootDir, `vmlinuz-${release}`),
    systemMap: path.join(bootDir, `System.map-${release}`),
    kerntypes: path.join(bootDir, `Kerntypes-${release}`),
  };
}

/** System.map: one "address type name" line per symbol, sorted by address (as nm -n prints). */
export function systemMapText(layout: KernelLayout): string {
  return layout.symbols.map((s) => `${s.address.toString(16).padStart(16, '0')} ${s.type} ${s.name}\n`).join('');
}

/**
 * A simulated `make bzImage modules_install install`: writes vmlinuz,
 * System.map and Kerntypes for the configuration into `bootDir`, unless
 * all three already exist.
 */
export function buildKernel(bootDir: string, config: KernelConfig, source: () => TextSource): KernelBuildFiles {
  const files = buildFileNames(bootDir, config.release);
  if (fs.existsSync(files.vmlinuz) && fs.existsSync(files.systemMap) && fs.existsSync(files.kerntypes)) return files;
  const image = buildKernelImage(config, source());
  writeFileAtomic(files.vmlinuz, encodeKernelElf(image), 0o644);
  writeFileAtomic(files.systemMap, systemMapText(kernelLayout(config)), 0o644);
  writeFileAtomic(files.kerntypes, kerntypesJson(config.release), 0o644);
  return files;
}
