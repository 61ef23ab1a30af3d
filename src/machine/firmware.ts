/**
 * The platform firmware's side of firmware-assisted dump (what POWER's
 * RTAS and hypervisor do for fadump, on our x86_64 machine): it holds the
 * registration the running kernel makes with ibm,configure-kernel-dump
 * outside RAM, and at ibm,os-term with a registration in force it saves
 * each CPU's registers, copies boot memory to where the kernel asked,
 * resets the devices and restarts the machine without clearing RAM; the
 * next boot finds the device-tree property rtas/ibm,kernel-dump.
 *
 * Its state is hardware state (lib/machine/firmware/), written through
 * writeHardwareFile so that a killed step rolls it back with RAM:
 *   firmware/ibm,configure-kernel-dump   the registered fadump_mem_struct
 *   firmware/rtas/ibm,kernel-dump        the property: the structure of the
 *                                        dump taken, bytes_dumped filled in
 * Nothing here knows Linux: addresses, sizes and registers come from the
 * caller, as they come from the OS through RTAS.
 */
import { CorruptDumpError, viewOf } from '../codec/index.js';
import { PAGE_SIZE_N } from './constants.js';
import { readHardwareFile, removeHardwareFile, writeHardwareFile } from './hardware.js';
import type { PhysicalRam } from './ram.js';
import type { MachineRoot } from './root.js';
import { readState } from './state.js';
import {
  FADUMP_CPU_STATE_DATA, FADUMP_ERROR_DEST_TOO_SMALL, FADUMP_ERROR_FLAG, FADUMP_ERROR_INVALID_DATA_TYPE,
  FADUMP_ERROR_INVALID_DEST_ADDR, FADUMP_ERROR_INVALID_SOURCE_ADDR, FADUMP_FORMAT_VERSION, FADUMP_HPTE_REGION,
  FADUMP_INVALIDATE, FADUMP_REAL_MODE_REGION, FADUMP_REGISTER, FADUMP_REQUEST_FLAG, FADUMP_SECTIONS,
  FADUMP_STATUS_DUMP_PERFORMED, FADUMP_STATUS_DUMP_TRIGGERED, FADUMP_UNREGISTER, fadump_mem_struct, fadump_reg_entry,
  fadump_reg_save_area_header, REG_ID_CPUEND, REG_ID_CPUSTRT, REGSAVE_AREA_MAGIC, REGSAVE_AREA_VERSION,
  regSaveAreaBytes, RTAS_OUT_DUMP_ACTIVE, RTAS_OUT_DUMP_ALREADY_REGISTERED, RTAS_OUT_PARAM_ERROR, RTAS_OUT_SUCCESS,
  X86_64_REG_IDS, fadumpStrToU64, type CpuRegisterState, type FadumpMemStruct, type FadumpSection,
} from './rtas_fadump.js';

/** The hardware file holding the registration in force. */
export const FW_REGISTRATION = 'firmware/ibm,configure-kernel-dump';
/** The hardware file holding the device-tree property rtas/ibm,kernel-dump. */
export const FW_KERNEL_DUMP_PROPERTY = 'firmware/rtas/ibm,kernel-dump';

/** The CPUs of the machine (the simulated machine has one). */
export const FIRMWARE_NR_CPUS = 1;

/** Bytes copied per step when preserving a region (bounded memory whatever its size). */
const COPY_CHUNK = 1 << 20;

/** What ibm,configure-kernel-dump-sizes says: bytes the firmware needs per firmware-filled section. */
export interface KernelDumpSizes {
  cpuStateData: bigint;
  hpteRegion: bigint;
}

/**
 * ibm,configure-kernel-dump-sizes: the CPU state data is the register save
 * area for every CPU, rounded up to a page so the boot-memory copy that
 * follows it in the kernel's area stays page aligned; x86_64 has no hashed
 * page table, so the HPTE region is empty.
 */
export function kernelDumpSizes(nrCpus = FIRMWARE_NR_CPUS): KernelDumpSizes {
  const raw = BigInt(regSaveAreaBytes(nrCpus));
  return { cpuStateData: ((raw + PAGE_SIZE_N - 1n) / PAGE_SIZE_N) * PAGE_SIZE_N, hpteRegion: 0n };
}

function decodeStruct(bytes: Buffer, file: string): FadumpMemStruct {
  if (bytes.length !== fadump_mem_struct.size) {
    throw new CorruptDumpError(`${file}: ${bytes.length} bytes, not a fadump_mem_struct (${fadump_mem_struct.size})`, { file, struct: 'fadump_mem_struct' });
  }
  return fadump_mem_struct.decode(viewOf(bytes));
}

/** The firmware of one machine, with the RAM it preserves. */
export class PlatformFirmware {
  constructor(readonly root: MachineRoot, readonly ram: PhysicalRam) {}

  /** The registration in force, or null. */
  registration(): FadumpMemStruct | null {
    const raw = readHardwareFile(this.root, FW_REGISTRATION);
    return raw ? decodeStruct(raw, FW_REGISTRATION) : null;
  }

  /** The device-tree property rtas/ibm,kernel-dump: present only while a dump waits. */
  kernelDumpProperty(): FadumpMemStruct | null {
    const raw = readHardwareFile(this.root, FW_KERNEL_DUMP_PROPERTY);
    return raw ? decodeStruct(raw, FW_KERNEL_DUMP_PROPERTY) : null;
  }

  /**
   * ibm,configure-kernel-dump. REGISTER checks the structure (version,
   * section count and offset, each requested section's type, source and
   * destination inside RAM, destinations not overlapping sources) and keeps
   * a copy, as the hypervisor does; the kernel must invalidate and register
   * again to change it. UNREGISTER drops the registration. INVALIDATE
   * drops a dump that waits (the property goes away). Returns the RTAS
   * status.
   */
  configureKernelDump(cmd: number, fdm: FadumpMemStruct): number {
    switch (cmd) {
      case FADUMP_REGISTER: {
        if (this.registration()) return RTAS_OUT_DUMP_ALREADY_REGISTERED;
        if (this.kernelDumpProperty()) return RTAS_OUT_DUMP_ACTIVE;
        if (!this.validRegistration(fdm)) return RTAS_OUT_PARAM_ERROR;
        const kept: FadumpMemStruct = { ...fdm, header: { ...fdm.header, dump_status_flag: 0 } };
        for (const s of FADUMP_SECTIONS) kept[s] = { ...fdm[s], error_flags: 0, bytes_dumped: 0n };
        writeHardwareFile(this.root, FW_REGISTRATION, fadump_mem_struct.toBytes(kept));
        return RTAS_OUT_SUCCESS;
      }
      case FADUMP_UNREGISTER:
        removeHardwareFile(this.root, FW_REGISTRATION);
        return RTAS_OUT_SUCCESS;
      case FADUMP_INVALIDATE:
        removeHardwareFile(this.root, FW_KERNEL_DUMP_PROPERTY);
        return RTAS_OUT_SUCCESS;
      default:
        return RTAS_OUT_PARAM_ERROR;
    }
  }

  private validRegistration(fdm: FadumpMemStruct): boolean {
    const h = fdm.header;
    if (h.dump_format_version !== FADUMP_FORMAT_VERSION) return false;
    if (h.dump_num_sections !== FADUMP_SECTIONS.length) return false;
    if (h.offset_first_dump_section !== fadump_mem_struct.offsetOf.cpu_state_data) return false;
    const requested: FadumpSection[] = FADUMP_SECTIONS.map((s) => fdm[s]).filter((s) => s.request_flag === FADUMP_REQUEST_FLAG);
    const size = this.ram.size;
    const inRam = (a: bigint, n: bigint): boolean => a >= 0n && n >= 0n && a + n <= size;
    for (const s of requested) {
      if (![FADUMP_CPU_STATE_DATA, FADUMP_HPTE_REGION, FADUMP_REAL_MODE_REGION].includes(s.source_data_type)) return false;
      if (!inRam(s.destination_address, s.source_len)) return false;
      if (s.source_data_type === FADUMP_REAL_MODE_REGION && !inRam(s.source_address, s.source_len)) return false;
    }
    const sizes = kernelDumpSizes();
    if (fdm.cpu_state_data.request_flag === FADUMP_REQUEST_FLAG && fdm.cpu_state_data.source_len < sizes.cpuStateData) return false;
    // No destination may overlap another section's destination or any source the firmware copies.
    const spans: Array<[bigint, bigint]> = requested.map((s) => [s.destination_address, s.destination_address + s.source_len]);
    for (const s of requested) if (s.source_data_type === FADUMP_REAL_MODE_REGION) spans.push([s.source_address, s.source_address + s.source_len]);
    const used = spans.filter(([a, b]) => b > a);
    for (let i = 0; i < used.length; i++) {
      for (let j = i + 1; j < used.length; j++) if (used[i][0] < used[j][1] && used[j][0] < used[i][1]) return false;
    }
    return true;
  }

  /**
   * ibm,os-term with a registration in force: every requested section is
   * preserved (the register save area written from `cpus`, CR3 taken from
   * the CPU state the machine holds; real-mode regions copied), the
   * property is set for the next boot and the registration is spent.
   * Returns the structure the property holds, or null when nothing is
   * registered (the caller then reboots as it would have).
   */
  osTerm(cpus: readonly CpuRegisterState[], opts: { resetDevices?: () => void } = {}): FadumpMemStruct | null {
    const fdm = this.registration();
    if (!fdm) return null;
    const done: FadumpMemStruct = { ...fdm, header: { ...fdm.header } };
    let status = FADUMP_STATUS_DUMP_TRIGGERED | FADUMP_STATUS_DUMP_PERFORMED;
    for (const name of FADUMP_SECTIONS) {
      const s = { ...fdm[name], error_flags: 0, bytes_dumped: 0n };
      if (s.request_flag === FADUMP_REQUEST_FLAG) {
        switch (s.source_data_type) {
          case FADUMP_CPU_STATE_DATA:
            s.bytes_dumped = this.saveCpuState(s, cpus);
            if (s.bytes_dumped === 0n) s.error_flags = FADUMP_ERROR_DEST_TOO_SMALL;
            break;
          case FADUMP_HPTE_REGION:
            // x86_64 has no hashed page table: nothing to save.
            s.bytes_dumped = 0n;
            break;
          case FADUMP_REAL_MODE_REGION:
            s.error_flags = this.preserveRegion(s);
            if (s.error_flags === 0) s.bytes_dumped = s.source_len;
            break;
          default:
            s.error_flags = FADUMP_ERROR_INVALID_DATA_TYPE;
        }
        if (s.error_flags !== 0) status |= FADUMP_ERROR_FLAG;
      }
      done[name] = s;
    }
    done.header.dump_status_flag = status;
    this.ram.flush();
    // PCI and I/O are reset before the restart: the next kernel finds devices in a clean state.
    opts.resetDevices?.();
    writeHardwareFile(this.root, FW_KERNEL_DUMP_PROPERTY, fadump_mem_struct.toBytes(done));
    removeHardwareFile(this.root, FW_REGISTRATION);
    return done;
  }

  /** Writes the register save area at the section's destination; returns its bytes, or 0 when it does not fit. */
  private saveCpuState(s: FadumpSection, cpus: readonly CpuRegisterState[]): bigint {
    const need = regSaveAreaBytes(cpus.length);
    if (BigInt(need) > s.source_len || s.destination_address + BigInt(need) > this.ram.size) return 0n;
    const buf = new Uint8Array(need);
    const view = viewOf(buf);
    let at = fadump_reg_save_area_header.encode({
      magic_number: REGSAVE_AREA_MAGIC, version: REGSAVE_AREA_VERSION, num_cpu_offset: fadump_reg_save_area_header.size,
    }, view, 0);
    view.setUint32(at, cpus.length, true);
    at += 4;
    const cr3 = readState(this.root)?.cpu?.cr3;
    for (const c of cpus) {
      at = fadump_reg_entry.encode({ reg_id: REG_ID_CPUSTRT, reg_value: BigInt(c.cpu) }, view, at);
      for (const id of X86_64_REG_IDS) {
        // CR3 is a register the machine holds: the firmware reads it, whatever the caller says.
        const value = id === 'CR3' && cr3 !== undefined ? cr3 : c.regs[id];
        at = fadump_reg_entry.encode({ reg_id: fadumpStrToU64(id), reg_value: value }, view, at);
      }
      at = fadump_reg_entry.encode({ reg_id: REG_ID_CPUEND, reg_value: BigInt(c.cpu) }, view, at);
    }
    const padded = new Uint8Array(Number(s.source_len));
    padded.set(buf);
    this.ram.write(s.destination_address, padded);
    return BigInt(need);
  }

  /** Copies a real-mode region to its destination in bounded chunks; returns error flags (0: copied). */
  private preserveRegion(s: FadumpSection): number {
    if (s.source_address + s.source_len > this.ram.size) return FADUMP_ERROR_INVALID_SOURCE_ADDR;
    if (s.destination_address + s.source_len > this.ram.size) return FADUMP_ERROR_INVALID_DEST_ADDR;
    const buf = Buffer.alloc(COPY_CHUNK);
    for (let off = 0n; off < s.source_len;) {
      const n = Number(s.source_len - off < BigInt(COPY_CHUNK) ? s.source_len - off : BigInt(COPY_CHUNK));
      const piece = buf.subarray(0, n);
      this.ram.readInto(s.source_address + off, piece);
      this.ram.write(s.destination_address + off, piece);
      off += BigInt(n);
    }
    return 0;
  }

  /**
   * What the firmware does at every boot it performs: a boot that cleared
   * RAM (power-on, reset) forgets everything, registration and waiting
   * dump alike; a restart that kept RAM forgets the registration (the OS
   * registers again each boot) and keeps a waiting dump until the OS
   * invalidates it.
   */
  boot(kind: 'cold' | 'warm'): void {
    removeHardwareFile(this.root, FW_REGISTRATION);
    if (kind === 'cold') removeHardwareFile(this.root, FW_KERNEL_DUMP_PROPERTY);
  }
}
