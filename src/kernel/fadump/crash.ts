/**
 * The crash with fadump registered (crash_fadump, rtas_os_term) and the
 * firmware's restart into the capture boot. crash_fadump() fills the
 * crash info header (crashing CPU, its registers, the online mask) and
 * CRASHTIME, then calls ibm,os-term: the firmware preserves what was
 * registered and restarts the machine without clearing RAM; the boot
 * loader's default entry boots, a normal boot with no kexec.
 */
import { PciBus, PlatformFirmware, writeState, type CpuRegisterState, type FadumpMemStruct, type X86RegId } from '../../machine/index.js';
import { bootKernel } from '../boot.js';
import { readLoaderEntry } from '../bootloader.js';
import { buildKernel } from '../build.js';
import { crashSaveVmcoreinfo } from '../crash_core.js';
import { readKernelImageFile } from '../image.js';
import { rtcBootTime } from '../rtc.js';
import type { Kernel } from '../kernel.js';
import { configForRam } from '../layout.js';
import { kernelWallClock, type PanicInfo } from '../panic.js';
import { bootCommandLine } from '../pstore/init.js';
import { uts_namespace } from '../structs/new_utsname.js';
import type { PtRegs } from '../structs/pt_regs.js';
import { loadImage, sim_workload, type RunningSystem } from '../system.js';
import { hostClock } from '../drivers/core.js';
import { findKernelTextElf } from '../workload/elf_text.js';
import { CPU_UNKNOWN } from './constants.js';
import { dumpRegistered, readFwDump } from './state.js';
import { fadump_crash_info_header } from './structs.js';

/** What crash_fadump() hands the firmware: the state of every CPU at the call. */
export interface FadumpCrash {
  cpus: CpuRegisterState[];
  headerAddr: bigint;
}

/** Offset of the ibm,os-term call inside crash_fadump (where the CPU is when the firmware takes over). */
const OS_TERM_CALL_OFFSET = 0x9an;
/** x86_64 control registers of a running 5.4 kernel (PE|MP|ET|NE|WP|AM|PG; PAE|PSE|PGE|OSFXSR|OSXMMEXCPT|...). */
const CR0_RUNNING = 0x80050033n;
const CR4_RUNNING = 0x3606f0n;
/** RFLAGS with interrupts hard-disabled, as crash_fadump runs (bit 1 is always set). */
const RFLAGS_IRQS_OFF = 0x46n;

/**
 * The registers of the crashing CPU when it enters the firmware: inside
 * crash_fadump, a little deeper on the stack than at the panic, interrupts
 * off; the general registers as the panic left them. (The capture boot
 * uses the crash info header's copy of the panic registers for this CPU,
 * not these: they only show where the CPU was.)
 */
function cpuAtOsTerm(kernel: Kernel, regs: PtRegs): Record<X86RegId, bigint> {
  return {
    RAX: regs.ax, RBX: regs.bx, RCX: regs.cx, RDX: regs.dx, RSI: regs.si, RDI: regs.di, RBP: regs.bp, RSP: regs.sp - 0x98n,
    R8: regs.r8, R9: regs.r9, R10: regs.r10, R11: regs.r11, R12: regs.r12, R13: regs.r13, R14: regs.r14, R15: regs.r15,
    RIP: kernel.sym('crash_fadump').address + OS_TERM_CALL_OFFSET, RFLAGS: RFLAGS_IRQS_OFF, CS: regs.cs, SS: regs.ss,
    DS: 0n, ES: 0n, FS: 0n, GS: 0n, FS_BASE: 0n, GS_BASE: 0n, CR0: CR0_RUNNING, CR2: 0n, CR3: 0n, CR4: CR4_RUNNING,
  };
}

/**
 * crash_fadump(): with a registration in force, the first CPU here claims
 * crashing_cpu, fills the crash info header and CRASHTIME, and returns
 * what the firmware call needs; null when fadump is not registered (the
 * panic goes on as it would have).
 */
export function crashFadump(kernel: Kernel, panic: PanicInfo): FadumpCrash | null {
  const fw = readFwDump(kernel);
  if (!dumpRegistered(fw) || fw.fadumphdr_addr === 0n) return null;
  const cpu = kernel.readU32('panic_cpu');
  // cmpxchg(&crashing_cpu, -1, this_cpu): another CPU already on its way would wait here.
  if (kernel.readU32('crashing_cpu') !== CPU_UNKNOWN) return null;
  kernel.writeU32('crashing_cpu', cpu);
  const fdh = kernel.readPhysStruct(fadump_crash_info_header, fw.fadumphdr_addr);
  fdh.crashing_cpu = cpu;
  fdh.regs = panic.regs;
  fdh.online_mask = { bits: fdh.online_mask.bits.map((_, i) => (i === cpu >> 6 ? 1n << BigInt(cpu & 63) : 0n)) };
  kernel.writePhysStruct(fadump_crash_info_header, fw.fadumphdr_addr, fdh);
  crashSaveVmcoreinfo(kernel, kernelWallClock(kernel).sec);
  kernel.flush();
  return { cpus: [{ cpu, regs: cpuAtOsTerm(kernel, panic.regs) }], headerAddr: fw.fadumphdr_addr };
}

/** How ibm,os-term ended: the firmware's dump and the machine after its restart, or null when it held no registration. */
export interface FadumpOsTerm {
  dump: FadumpMemStruct;
  system: RunningSystem;
}

/**
 * rtas_os_term(): the firmware preserves what is registered and restarts
 * the machine keeping RAM (null when the firmware holds no registration:
 * the caller's panic path goes on).
 */
export function fadumpOsTerm(sys: RunningSystem, crash: FadumpCrash, firmware = new PlatformFirmware(sys.root, sys.ram)): FadumpOsTerm | null {
  // The firmware resets PCI before it restarts the OS: the capture boot finds every device fresh.
  const dump = firmware.osTerm(crash.cpus, { resetDevices: () => PciBus.open(sys.root).resetAll(hostClock(sys.kernel)) });
  if (!dump) return null;
  return { dump, system: firmwareRestart(sys, firmware) };
}

/**
 * The firmware's restart after a dump: RAM is not cleared, the boot
 * loader loads the default entry's kernel (boot/loader.conf) at its
 * address, and it boots the normal way (no kexec, no zero page from a
 * loader in RAM), finding rtas/ibm,kernel-dump. No workload starts: the
 * capture boot's userspace is the dump-capture initramfs.
 */
export function firmwareRestart(sys: RunningSystem, firmware: PlatformFirmware): RunningSystem {
  const old = sys.kernel;
  const hostname = old.readStruct(uts_namespace, 'init_uts_ns').name.nodename;
  const wl = old.readStruct(sim_workload, 'sim_workload');
  // The RTC has gone on with the crashed kernel's clock; the firmware boot takes a second of it.
  const bootTime = rtcBootTime(sys.root, old);
  const cmdline = readLoaderEntry(sys.root)?.options ?? bootCommandLine(old);
  firmware.boot('warm');
  const config = configForRam(sys.ram.size);
  const image = readKernelImageFile(buildKernel(sys.root.bootDir, config, () => findKernelTextElf()).vmlinuz);
  const base = loadImage(sys.ram, image);
  const { kernel, cpu } = bootKernel(sys.ram, base, {
    cmdline, hostname, bootTime, seed: wl.seed + 1, firmware, bus: PciBus.open(sys.root),
  });
  kernel.writeStruct(sim_workload, 'sim_workload', { ...sim_workload.zero(), seed: wl.seed, profile: '' });
  sys.ram.flush();
  const state = { ...sys.state, power: 'on' as const, cpu };
  writeState(sys.root, state);
  return { ...sys, state, kernel };
}
