import { DumpError, formatSize, hex, UsageError, wrapError } from '../codec/index.js';
import {
  compareRtcTime, lockMachine, MachineRoot, PciBus, PhysicalRam, PlatformFirmware, readRtc, readState, requireRunning, STANDARD_DEVICES, writeState,
  type DeviceSlot, type MachineLock, type MachineState,
} from '../machine/index.js';
import { BuddyAllocator } from './mm/buddy.js';
import { bootKernel, buddyPageSource, type BootParams } from './boot.js';
import { buildKernel } from './build.js';
import { readKernelImageFile, type KernelImage } from './image.js';
import { Kernel } from './kernel.js';
import { configForRam } from './layout.js';
import { MemMap } from './mm/mem_map.js';
import { countPageTypes, type PageCounts } from './mm/page_type.js';
import { formatDmesg, logSymbolsOf, printk, readLogRecords, advanceClock } from './printk.js';
import { listTasks, TaskManager, type TaskInfo } from './tasks.js';
import { uts_namespace } from './structs/new_utsname.js';
import { sim_workload } from './structs/sim_workload.js';
import { ContentGenerator } from './workload/content.js';
import { findKernelTextElf } from './workload/elf_text.js';
import { WorkloadFiller } from './workload/fill.js';
import { profileByName, type Profile } from './workload/profiles.js';
import { Prng } from './prng.js';
import { crashkernelRegion } from './crashkernel.js';
import { kexecCrashLoaded } from './kexec_crash.js';
import { isKdumpKernel, procVmcore } from './vmcore/proc_vmcore.js';
import type { PhysRange } from './boot_layout.js';
import { writeLoaderEntry } from './bootloader.js';
import { fadumpStatus, type FadumpStatus } from './fadump/state.js';
import { kernelRealTime, rtcBootTime, rtcFollowKernel } from './rtc.js';

/**
 * RAM's chunk cache at power-on: 4 MiB, not the default 16. The workload
 * writes its blocks across all of RAM in no order a bigger cache would
 * catch (measured: the same time at 4 GiB), and the memory is better left
 * to the workload's content pool.
 */
const POWER_ON_RAM_CHUNKS = 16;

/**
 * RAM's chunk cache for `lkcd config`, whose writeout walks the dump in
 * memory front to back and releases its frames in order: 4 MiB serve that
 * as well as 16 (measured at 1 GiB), and the writeout's per-record tables
 * need the room.
 */
export const CONFIG_RAM_CHUNKS = 16;

export const MIN_RAM = 16n << 20n;
export const MAX_RAM = 16n << 30n;

export { sim_workload } from './structs/sim_workload.js';

export interface PowerOnOptions {
  mem: bigint;
  profile: string;
  seed: number;
  hostname?: string;
  cmdline?: string;
  /** Passed to the boot (the dump driver's crashdump= reservation). */
  earlyReserve?: BootParams['earlyReserve'];
  /** Hears what the kernel build has to say (once: no debug vmlinux could be built). */
  onNote?: (line: string) => void;
  /**
   * Commit the step once the machine has booted (default true). A cold
   * reboot inside a crash leaves the commit to the end of the crash.
   */
  commit?: boolean;
  /** The PCI devices fitted (default: the standard three, STANDARD_DEVICES). */
  devices?: readonly DeviceSlot[];
}

export function defaultCmdline(release: string): string {
  return `BOOT_IMAGE=/boot/vmlinuz-${release} root=/dev/vda1 ro console=ttyS0,115200 panic=5`;
}

/** The running machine: its root, RAM and kernel, opened for one command. */
export interface RunningSystem {
  root: MachineRoot;
  state: MachineState & { cpu: NonNullable<MachineState['cpu']> };
  ram: PhysicalRam;
  kernel: Kernel;
  /** The hold on the machine lock this system was opened under (released by closeSystem). */
  lock?: MachineLock;
}

/**
 * Opens the running machine under its lock (reentrant within a process;
 * BUSY when another command holds it) after rolling back any step a killed
 * command left unfinished. Writable, the RAM starts a step; callers close
 * with closeSystem, which commits it.
 */
export function openSystem(root: MachineRoot, opts: { readOnly?: boolean; maxChunks?: number } = {}): RunningSystem {
  const lock = lockMachine(root);
  try {
    const state = requireRunning(root);
    // The step ends by moving the RTC on: a corrupt one is refused before the command changes anything.
    if (!opts.readOnly) readRtc(root);
    const ram = PhysicalRam.open(root.ramPath, state.ram_bytes, { readOnly: opts.readOnly, maxChunks: opts.maxChunks });
    try {
      return { root, state, ram, kernel: Kernel.open(ram, state.cpu), lock };
    } catch (e) {
      ram.close();
      throw wrapError(`${root.statePath}: no running kernel at cpu.kernel_base ${hex(state.cpu.kernel_base)}`, e);
    }
  } catch (e) {
    lock.release();
    throw e;
  }
}

/**
 * Commits the step (RAM and hardware state, the RTC moved on to the
 * kernel's clock), closes RAM and releases the lock.
 */
export function closeSystem(sys: RunningSystem): void {
  try {
    if (sys.ram.writable && !sys.ram.isClosed) rtcFollowKernel(sys.root, sys.kernel);
  } finally {
    closeRam(sys);
  }
}

function closeRam(sys: RunningSystem): void {
  try {
    sys.ram.close();
  } finally {
    sys.lock?.release();
  }
}

export function validateRamSize(mem: bigint): void {
  if (mem < MIN_RAM || mem > MAX_RAM) throw new UsageError(`--mem ${formatSize(mem)} is out of range (16M to 16G)`);
  if (mem % (1n << 20n) !== 0n) throw new UsageError(`--mem ${mem} is not a whole number of MiB`);
}

/** The boot loader: copies each PT_LOAD of the image to its physical address. */
export function loadImage(ram: PhysicalRam, image: KernelImage): bigint {
  for (const s of image.segments) {
    ram.write(s.paddr, s.bytes);
  }
  return image.segments[0].paddr;
}

/**
 * The boot of a cold power-on, on cleared RAM: the loader, the firmware, the
 * devices, the kernel. A function of its own so that what only the boot
 * needs (the image's segments, the devices' memories) is garbage once it
 * returns, not held on the stack while the workload fills RAM.
 */
function coldBoot(root: MachineRoot, ram: PhysicalRam, vmlinuz: string, release: string, opts: PowerOnOptions): ReturnType<typeof bootKernel> {
  const base = loadImage(ram, readKernelImageFile(vmlinuz));
  const cmdline = opts.cmdline ?? defaultCmdline(release);
  writeLoaderEntry(root, { linux: `/boot/vmlinuz-${release}`, options: cmdline });
  // The firmware starts from nothing at a cold boot: no registration, no waiting dump.
  const firmware = new PlatformFirmware(root, ram);
  firmware.boot('cold');
  // The devices power up with the machine, fresh: what they held before power was cut is gone.
  const bus = PciBus.powerOn(root, opts.devices ?? STANDARD_DEVICES, opts.seed, { uptimeNs: 0n });
  const params: BootParams = {
    cmdline,
    hostname: opts.hostname ?? 'lkcd-sim',
    // From the RTC, within the step (a kill puts it back with RAM): every boot has its own time.
    bootTime: rtcBootTime(root, null),
    seed: opts.seed,
    earlyReserve: opts.earlyReserve,
    firmware,
    bus,
  };
  return bootKernel(ram, base, params);
}

/**
 * Cold power-on: cleared RAM, the boot loader loads the kernel built for
 * this machine, the kernel boots, the workload fills memory.
 */
export function powerOn(root: MachineRoot, opts: PowerOnOptions): RunningSystem {
  validateRamSize(opts.mem);
  const profile = profileByName(opts.profile);
  if (!Number.isInteger(opts.seed) || opts.seed < 0 || opts.seed > 0xffffffff) throw new UsageError(`--seed ${opts.seed} is not an integer in 0..4294967295`);
  root.prepare();
  const lock = lockMachine(root);
  let ram: PhysicalRam | null = null;
  try {
    const config = configForRam(opts.mem);
    const files = buildKernel(root.bootDir, config, (maxBytes) => findKernelTextElf(maxBytes), { onNote: opts.onNote });
    // A replacement within the step: the old image (if any) comes back unless the step commits.
    ram = PhysicalRam.create(root.ramPath, opts.mem, { maxChunks: POWER_ON_RAM_CHUNKS });
    const { kernel, cpu } = coldBoot(root, ram, files.vmlinuz, config.release, opts);
    startWorkload(kernel, profile, opts.seed);
    const state = { version: 1 as const, power: 'on' as const, ram_bytes: opts.mem, cpu };
    writeState(root, state);
    if (opts.commit !== false) {
      rtcFollowKernel(root, kernel);
      ram.commit();
    }
    return { root, state, ram, kernel, lock };
  } catch (e) {
    // Nothing half-booted is left: the step is undone here, as it would be after a kill.
    if (opts.commit !== false) ram?.rollBack();
    lock.release();
    throw e;
  }
}

function allocators(kernel: Kernel): { memmap: MemMap; buddy: BuddyAllocator; tasks: TaskManager } {
  const memmap = new MemMap(kernel);
  const buddy = new BuddyAllocator(kernel, memmap);
  return { memmap, buddy, tasks: new TaskManager(kernel, memmap, buddyPageSource(buddy)) };
}

/** Starts the profile's workload on a freshly booted kernel. */
export function startWorkload(kernel: Kernel, profile: Profile, seed: number): void {
  const { memmap, buddy, tasks } = allocators(kernel);
  const filler = new WorkloadFiller(kernel, memmap, buddy, new ContentGenerator({ seed }), seed);
  filler.fill(profile, tasks);
  kernel.writeStruct(sim_workload, 'sim_workload', { seed, generation: 0, profile: profile.name, run_seconds: 0n, _reserved: '' });
}

/** Turns the machine off: RAM keeps its bytes until the next cold power-on clears it. */
export function powerOff(root: MachineRoot): void {
  const lock = lockMachine(root);
  try {
    const s = readState(root);
    if (!s) throw new DumpError('NOINPUT', `no machine at ${root.dir}`);
    writeState(root, { ...s, power: 'off', cpu: null });
    // Without power the devices keep nothing.
    PciBus.clear(root);
  } finally {
    lock.release();
  }
}

const RUN_MESSAGES = [
  'systemd-journald[%p]: Data hash table of /var/log/journal/system.journal has a fill level at 75.0',
  'EXT4-fs (vda1): re-mounted. Opts: errors=remount-ro',
  'TCP: request_sock_TCP: Possible SYN flooding on port 22. Sending cookies.',
  'perf: interrupt took too long (2503 > 2500), lowering kernel.perf_event_max_sample_rate to 79750',
  'audit: type=1400 audit(%t): apparmor="STATUS" operation="profile_load"',
  'kworker/0:1: page allocation stats: %n pages recycled',
  'nfsd: last server has exited, flushing export cache',
  'sd 0:0:0:0: [sda] Synchronizing SCSI cache',
];

/**
 * Runs the machine for `seconds` of simulated time: processes free some of
 * their memory and allocate new, files are read into the cache, and the
 * kernel logs a few lines. Deterministic for the machine's seed.
 */
export function runWorkload(sys: RunningSystem, seconds: number): { freed: bigint; allocated: bigint; lines: number } {
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > 86400) throw new UsageError(`--seconds ${seconds} is not an integer in 1..86400`);
  const { kernel } = sys;
  const wl = kernel.readStruct(sim_workload, 'sim_workload');
  const profile = profileByName(wl.profile || 'idle');
  const { memmap, buddy } = allocators(kernel);
  const rng = new Prng(wl.seed ^ (wl.generation + 1) * 0x9e37);
  const filler = new WorkloadFiller(kernel, memmap, buddy, new ContentGenerator({ seed: wl.seed ^ (wl.generation + 1) }), wl.seed + wl.generation + 1);
  // Frames with a struct page: [minPfn, maxPfn) (a capture kernel's start at its region).
  const maxPfn = memmap.frames;
  const churnPerSecond = maxPfn / 2000n + 16n;
  let freed = 0n;
  let allocated = 0n;
  let lines = 0;
  for (let s = 0; s < seconds; s++) {
    // Free: sample frames, release user and cache pages found.
    for (let i = 0n; i < churnPerSecond; i++) {
      const pfn = memmap.minPfn + BigInt(rng.below(Number(maxPfn)));
      const p = memmap.get(pfn);
      if (p._mapcount === -129) continue;
      const isUser = (p.mapping & 1n) === 1n || ((p.flags >> 4n) & 1n) === 1n;
      if (isUser && p._refcount === 1) {
        buddy.free(pfn, 0);
        freed++;
      }
    }
    const uses = ['anon', 'cache', 'database', 'incompressible'] as const;
    for (const use of uses) {
      if (profile.share[use] === 0) continue;
      const blocks = filler.allocateUse(use, (churnPerSecond * BigInt(Math.round(profile.share[use] * 100))) / 100n);
      for (const [, o] of blocks) allocated += 1n << BigInt(o);
    }
    advanceClock(kernel, 1_000_000_000n);
    if (rng.below(4) === 0) {
      const msg = rng.pick(RUN_MESSAGES).replace('%p', String(200 + rng.below(800)))
        .replace('%t', `${kernel.readU64('sim_boot_time') + kernel.readU64('sim_clock_ns') / 1_000_000_000n}.${rng.below(1000)}:${rng.below(100)}`)
        .replace('%n', String(freed));
      printk(kernel, msg);
      lines++;
    }
  }
  kernel.writeStruct(sim_workload, 'sim_workload', { ...wl, generation: wl.generation + 1, run_seconds: wl.run_seconds + BigInt(seconds) });
  // Traffic through the devices: counters, logs, queues and on-chip memory change with the workload.
  const bus = PciBus.open(sys.root);
  bus.run(seconds, { uptimeNs: kernel.readU64('sim_clock_ns') });
  bus.flush();
  return { freed, allocated, lines };
}

export interface SystemStatus {
  ram_bytes: bigint;
  release: string;
  hostname: string;
  cmdline: string;
  uptime_ns: bigint;
  boot_time: bigint;
  /** The RTC (lib/machine/rtc), seconds and nanoseconds: it runs with the kernel's clock, never behind it. */
  rtc_sec: bigint;
  rtc_nsec: number;
  profile: string;
  seed: number;
  pages: PageCounts & { total: bigint };
  tasks: number;
  kernel_base: bigint;
  cr3: bigint;
  /** The crashkernel= region, [start, end), or null. */
  crashkernel: PhysRange | null;
  kexec_crash_loaded: boolean;
  /** A kdump capture kernel (booted with elfcorehdr=). */
  kdump: boolean;
  /** Firmware-assisted dump, when fadump=on: registered, a dump active, boot memory, the area held. */
  fadump: FadumpStatus | null;
  /** Bytes of /proc/vmcore, or null when there is none. */
  vmcore_bytes: bigint | null;
}

/** The machine as the running kernel sees it: every figure read from RAM. */
export function systemStatus(sys: RunningSystem): SystemStatus {
  const { kernel } = sys;
  const memmap = new MemMap(kernel);
  const counts = countPageTypes(memmap);
  const uts = kernel.readStruct(uts_namespace, 'init_uts_ns');
  const cmdline = kernel.readBytes('boot_command_line');
  const wl = kernel.readStruct(sim_workload, 'sim_workload');
  // What the RTC reads now: it ticks with the kernel, and is written back at the end of each step.
  const stored = readRtc(sys.root);
  const real = kernelRealTime(kernel);
  const rtc = compareRtcTime(real, stored) > 0 ? real : stored;
  return {
    ram_bytes: sys.ram.size,
    release: uts.name.release,
    hostname: uts.name.nodename,
    cmdline: cmdline.subarray(0, cmdline.indexOf(0)).toString('latin1'),
    uptime_ns: kernel.readU64('sim_clock_ns'),
    boot_time: kernel.readU64('sim_boot_time'),
    rtc_sec: rtc.sec,
    rtc_nsec: rtc.nsec,
    profile: wl.profile,
    seed: wl.seed,
    pages: { ...counts, total: memmap.frames },
    tasks: listTasks(kernel.mem, kernel.sym('init_task').address).length,
    kernel_base: sys.state.cpu.kernel_base,
    cr3: sys.state.cpu.cr3,
    crashkernel: crashkernelRegion(kernel),
    kexec_crash_loaded: kexecCrashLoaded(kernel) !== null,
    kdump: isKdumpKernel(kernel) && !fadumpStatus(kernel)?.dumpActive,
    fadump: fadumpStatus(kernel),
    vmcore_bytes: procVmcore(kernel)?.size ?? null,
  };
}

export function systemDmesg(sys: RunningSystem): string {
  return formatDmesg(readLogRecords(sys.kernel.mem, logSymbolsOf(sys.kernel)));
}

export function systemTasks(sys: RunningSystem): TaskInfo[] {
  return listTasks(sys.kernel.mem, sys.kernel.sym('init_task').address);
}

