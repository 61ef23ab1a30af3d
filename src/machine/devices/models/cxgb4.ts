/**
 * A Chelsio T6-like adapter (PF4, the NIC function cxgb4 binds): a register
 * BAR, and EDC0, an on-chip memory holding the firmware's device log
 * (struct fw_devlog_e records, big-endian, as t4fw_api.h defines them), the
 * SGE contexts, the TCB table and two large packet payload regions (Tx and
 * Rx) that cudbg does not dump (cudbg_read_fw_mem skips them).
 *
 * Register names follow t4_regs.h where the register exists there; their
 * offsets, and the registers marked "ours", are this simulation's own
 * (the real T6 map is 332 KiB).
 */
import { be16, be32, be64, bytes, defineStruct, u8 } from '../../../codec/index.js';
import type { RegionSpec } from '../image.js';
import { SIMDEV_REGION_CONFIG, SIMDEV_REGION_MEM, SIMDEV_REGION_REGS } from '../image.js';
import { PCI_CFG_SPACE_SIZE } from '../pci.js';
import type { DeviceClock, DeviceModel, PayloadRange, PciDevice } from '../device.js';
import { fillConfigSpace, fillPackets } from './common.js';

export const CXGB4_MODEL = 'cxgb4-t6';
/** PCI_VENDOR_ID_CHELSIO and a T6 device id (T62100-CR). */
export const PCI_VENDOR_ID_CHELSIO = 0x1425;
export const CXGB4_DEVICE_ID = 0x6408;

/** BAR0 register file. */
export const CXGB4_REGS_SIZE = 0x4000;
/** EDC0, the on-chip memory (MiB as MA_EDRAM0_BAR gives it). */
export const CXGB4_EDC0_MB = 4;
export const CXGB4_EDC0_SIZE = CXGB4_EDC0_MB << 20;

// Registers.
export const PL_WHOAMI_A = 0x0000;
export const PL_REV_A = 0x0004;
/** PCIE_FW_A: the firmware's state word. */
export const PCIE_FW_A = 0x0008;
export const PCIE_FW_ERR_F = 1 << 31;
export const PCIE_FW_INIT_F = 1 << 30;
export const PCIE_FW_HALT_F = 1 << 29;
/** Ours: the running firmware's version (FW_HDR_FW_VER_*). */
export const FW_VERSION_A = 0x000c;
export const MA_TARGET_MEM_ENABLE_A = 0x0010;
export const EDRAM0_ENABLE_F = 1 << 0;
/** MA_EDRAM0_BAR_A: EDRAM0_BASE (MiB) << 16 | EDRAM0_SIZE (MiB). */
export const MA_EDRAM0_BAR_A = 0x0014;
/** The Tx and Rx payload memories of the packet manager: base, and (ours) size in bytes. */
export const TP_PMM_TX_BASE_A = 0x0018;
export const TP_PMM_TX_SIZE_A = 0x001c;
export const TP_PMM_RX_BASE_A = 0x0020;
export const TP_PMM_RX_SIZE_A = 0x0024;
/** Ours: where the firmware keeps its device log in EDC0 (FW_PARAMS_PARAM_DEV_DEVLOG on real firmware). */
export const DEVLOG_START_A = 0x0028;
export const DEVLOG_SIZE_A = 0x002c;
/** Ours: the sequence number the firmware writes next. */
export const DEVLOG_NEXT_SEQ_A = 0x0030;
/** PL_RST_A: PIORSTMODE | PIORST resets the chip (t4_fw_halt / t4_fw_restart). */
export const PL_RST_A = 0x0034;
export const PIORST_F = 1 << 0;
export const PIORSTMODE_F = 1 << 1;
/** Ours: the host's mailbox to the firmware (a FW_*_CMD opcode, FW_RESET_CMD..., acted on at once). */
export const CIM_PF_MAILBOX_DATA_A = 0x0038;
export const FW_HELLO_CMD = 0x02;
export const FW_PORT_CMD = 0x1b;
/** Port statistics, u64 each (MPS_PORT_STAT_*). */
export const MPS_PORT_STAT_TX_PORT_FRAMES_L = 0x0100;
export const MPS_PORT_STAT_TX_PORT_BYTES_L = 0x0108;
export const MPS_PORT_STAT_RX_PORT_FRAMES_L = 0x0110;
export const MPS_PORT_STAT_RX_PORT_BYTES_L = 0x0118;
/** SGE egress queue context pointers (ours: 32 queues x { cidx, pidx }). */
export const SGE_EQ_PTRS_A = 0x0200;
export const SGE_NR_EQ = 32;

// EDC0 layout.
export const EDC0_DEVLOG_START = 0x000000;
export const EDC0_DEVLOG_SIZE = 0x8000;
export const EDC0_SGE_CTXT_START = 0x008000;
export const SGE_CTXT_SIZE = 128;
export const EDC0_TCB_START = 0x010000;
export const TCB_SIZE = 128;
export const NR_TCBS = 4096;
export const EDC0_TX_PAYLOAD_START = 0x100000;
export const EDC0_TX_PAYLOAD_SIZE = 0x180000;
export const EDC0_RX_PAYLOAD_START = 0x280000;
export const EDC0_RX_PAYLOAD_SIZE = 0x180000;

/** FW_DEVLOG_FMT_LEN, FW_DEVLOG_FMT_PARAMS_NUM (t4fw_api.h). */
export const FW_DEVLOG_FMT_LEN = 192;
export const FW_DEVLOG_FMT_PARAMS_NUM = 8;

/** struct fw_devlog_e (t4fw_api.h): one firmware log record in adapter memory, big-endian. 256 bytes. */
export const fw_devlog_e = defineStruct('fw_devlog_e', {
  timestamp: be64,
  seqno: be32,
  reserved1: be16,
  level: u8,
  facility: u8,
  fmt: bytes(FW_DEVLOG_FMT_LEN),
  params: bytes(FW_DEVLOG_FMT_PARAMS_NUM * 4),
  reserved3: bytes(16),
});

/** enum fw_devlog_level and some of enum fw_devlog_facility. */
export const FW_DEVLOG_LEVEL_ERR = 2;
export const FW_DEVLOG_LEVEL_NOTICE = 3;
export const FW_DEVLOG_LEVEL_INFO = 4;
export const FW_DEVLOG_FACILITY_CORE = 0x00;
export const FW_DEVLOG_FACILITY_HW = 0x08;
export const FW_DEVLOG_FACILITY_PORT = 0x18;
export const FW_DEVLOG_FACILITY_OFLD = 0x28;

const FW_VERSION = (1 << 24) | (23 << 16) | (4 << 8) | 0; // 1.23.4.0

/** Appends a record to the device log ring (the firmware's own write). */
export function devlogWrite(dev: PciDevice, now: DeviceClock, level: number, facility: number, fmt: string, params: number[] = []): void {
  const seq = dev.readReg32(DEVLOG_NEXT_SEQ_A);
  const nentries = EDC0_DEVLOG_SIZE / fw_devlog_e.size;
  const at = EDC0_DEVLOG_START + (seq % nentries) * fw_devlog_e.size;
  const edc = dev.mem('edc0');
  const p = new Uint8Array(FW_DEVLOG_FMT_PARAMS_NUM * 4);
  const pv = new DataView(p.buffer);
  params.slice(0, FW_DEVLOG_FMT_PARAMS_NUM).forEach((x, i) => pv.setUint32(i * 4, x >>> 0, false));
  const fmtBytes = new Uint8Array(FW_DEVLOG_FMT_LEN);
  fmtBytes.set(Buffer.from(fmt, 'latin1').subarray(0, FW_DEVLOG_FMT_LEN - 1));
  // Core clock ticks (a 250 MHz core clock): what the firmware stamps.
  const ticks = now.uptimeNs / 4n;
  fw_devlog_e.encode({ timestamp: ticks, seqno: seq, reserved1: 0, level, facility, fmt: fmtBytes, params: p, reserved3: new Uint8Array(16) },
    new DataView(edc.buffer, edc.byteOffset, edc.byteLength), at);
  dev.setReg32(DEVLOG_NEXT_SEQ_A, seq + 1);
  dev.touch();
}

/** The firmware (re)starts: log cleared, contexts and TCBs cleared, counters zero, FW_INIT. */
function firmwareBoot(dev: PciDevice, now: DeviceClock): void {
  const edc = dev.mem('edc0');
  edc.fill(0, EDC0_DEVLOG_START, EDC0_TX_PAYLOAD_START);
  for (let off = MPS_PORT_STAT_TX_PORT_FRAMES_L; off < SGE_EQ_PTRS_A + SGE_NR_EQ * 8; off += 4) dev.setReg32(off, 0);
  dev.setReg32(DEVLOG_NEXT_SEQ_A, 0);
  dev.setReg32(PCIE_FW_A, PCIE_FW_INIT_F);
  devlogWrite(dev, now, FW_DEVLOG_LEVEL_NOTICE, FW_DEVLOG_FACILITY_CORE, 'FW 1.23.4.0 starting, boot from flash\n');
  devlogWrite(dev, now, FW_DEVLOG_LEVEL_INFO, FW_DEVLOG_FACILITY_HW, 'EDC0 %uMB enabled, MC0 absent\n', [CXGB4_EDC0_MB]);
  devlogWrite(dev, now, FW_DEVLOG_LEVEL_INFO, FW_DEVLOG_FACILITY_CORE, 'PF%u: %u VFs, %u ports\n', [4, 0, 2]);
  devlogWrite(dev, now, FW_DEVLOG_LEVEL_NOTICE, FW_DEVLOG_FACILITY_CORE, 'FW initialized, waiting for host\n');
}

export const cxgb4Model: DeviceModel = {
  name: CXGB4_MODEL,
  identity: {
    vendor: PCI_VENDOR_ID_CHELSIO, device: CXGB4_DEVICE_ID, revision: 0, classCode: 0x020000,
    subsystemVendor: PCI_VENDOR_ID_CHELSIO, subsystem: 0x0000,
    vendorName: 'Chelsio Communications Inc', deviceName: 'T62100-CR Unified Wire Ethernet Controller', className: 'Ethernet controller',
  },
  regions(): RegionSpec[] {
    return [
      { name: 'config', size: PCI_CFG_SPACE_SIZE, type: SIMDEV_REGION_CONFIG, busAddr: 0n },
      { name: 'bar0', size: CXGB4_REGS_SIZE, type: SIMDEV_REGION_REGS, busAddr: 0xfc000000n },
      { name: 'edc0', size: CXGB4_EDC0_SIZE, type: SIMDEV_REGION_MEM, busAddr: 0n },
    ];
  },
  powerOn(dev, now) {
    fillConfigSpace(dev, 0x4);
    const r = dev.rng(1);
    // Registers the driver does not use hold the chip's configuration: stable values for this seed.
    for (let off = 0x400; off < CXGB4_REGS_SIZE; off += 4) dev.setReg32(off, r.below(4) === 0 ? r.u32() : 0);
    dev.setReg32(PL_WHOAMI_A, (4 << 9) | 0x100);
    dev.setReg32(PL_REV_A, 0x1);
    dev.setReg32(FW_VERSION_A, FW_VERSION);
    dev.setReg32(MA_TARGET_MEM_ENABLE_A, EDRAM0_ENABLE_F);
    dev.setReg32(MA_EDRAM0_BAR_A, (0 << 16) | CXGB4_EDC0_MB);
    dev.setReg32(TP_PMM_TX_BASE_A, EDC0_TX_PAYLOAD_START);
    dev.setReg32(TP_PMM_TX_SIZE_A, EDC0_TX_PAYLOAD_SIZE);
    dev.setReg32(TP_PMM_RX_BASE_A, EDC0_RX_PAYLOAD_START);
    dev.setReg32(TP_PMM_RX_SIZE_A, EDC0_RX_PAYLOAD_SIZE);
    dev.setReg32(DEVLOG_START_A, EDC0_DEVLOG_START);
    dev.setReg32(DEVLOG_SIZE_A, EDC0_DEVLOG_SIZE);
    firmwareBoot(dev, now);
    this.fillPayload(dev);
  },
  payloadRanges(dev): PayloadRange[] {
    return [
      { region: 'edc0', offset: dev.readReg32(TP_PMM_TX_BASE_A), size: dev.readReg32(TP_PMM_TX_SIZE_A) },
      { region: 'edc0', offset: dev.readReg32(TP_PMM_RX_BASE_A), size: dev.readReg32(TP_PMM_RX_SIZE_A) },
    ];
  },
  fillPayload(dev) {
    const edc = dev.mem('edc0');
    this.payloadRanges(dev).forEach((p, i) => fillPackets(edc.subarray(p.offset, p.offset + p.size), dev.rng(0x1000 + i)));
    dev.touch();
  },
  writeReg(dev, offset, value, now) {
    if (offset === PL_RST_A && (value & PIORST_F)) {
      // A chip reset: the firmware restarts from flash.
      firmwareBoot(dev, now);
      return;
    }
    if (offset === CIM_PF_MAILBOX_DATA_A) {
      if (value === FW_HELLO_CMD) {
        dev.setReg32(PCIE_FW_A, dev.readReg32(PCIE_FW_A) | (1 << 15) | (4 << 12)); // PCIE_FW_MASTER_VLD, master PF4
        devlogWrite(dev, now, FW_DEVLOG_LEVEL_NOTICE, FW_DEVLOG_FACILITY_CORE, 'PF%u: driver attached (FW_HELLO), master\n', [4]);
      } else if (value === FW_PORT_CMD) {
        devlogWrite(dev, now, FW_DEVLOG_LEVEL_NOTICE, FW_DEVLOG_FACILITY_PORT, 'port %u: link up, %uGbps, full-duplex\n', [0, 100]);
        devlogWrite(dev, now, FW_DEVLOG_LEVEL_NOTICE, FW_DEVLOG_FACILITY_PORT, 'port %u: link up, %uGbps, full-duplex\n', [1, 100]);
      }
      dev.setReg32(offset, value);
      return;
    }
    dev.setReg32(offset, value);
  },
  run(dev, seconds, now) {
    const r = dev.rng(2);
    const bump = (lo: number, by: bigint): void => { dev.setReg64(lo, dev.readReg64(lo) + by); };
    const frames = BigInt(seconds) * BigInt(50_000 + r.below(200_000));
    bump(MPS_PORT_STAT_TX_PORT_FRAMES_L, frames);
    bump(MPS_PORT_STAT_TX_PORT_BYTES_L, frames * BigInt(600 + r.below(800)));
    bump(MPS_PORT_STAT_RX_PORT_FRAMES_L, frames + BigInt(r.below(10_000)));
    bump(MPS_PORT_STAT_RX_PORT_BYTES_L, frames * BigInt(500 + r.below(900)));
    for (let q = 0; q < SGE_NR_EQ; q++) {
      const at = SGE_EQ_PTRS_A + q * 8;
      dev.setReg32(at, (dev.readReg32(at) + r.below(4096)) & 0xffff);
      dev.setReg32(at + 4, (dev.readReg32(at + 4) + r.below(4096)) & 0xffff);
    }
    // Connections come and go: their TCBs are written in EDC0, a state and sequence numbers each.
    const edc = dev.mem('edc0');
    const view = new DataView(edc.buffer, edc.byteOffset, edc.byteLength);
    const n = Math.min(NR_TCBS, 16 + seconds * 8);
    for (let i = 0; i < n; i++) {
      const tid = r.below(NR_TCBS);
      const at = EDC0_TCB_START + tid * TCB_SIZE;
      const state = r.below(11); // TCP state machine: CLOSED..TIME_WAIT
      view.setUint32(at, (tid << 8) | state, false);
      view.setUint32(at + 4, r.u32(), false); // snd_una
      view.setUint32(at + 8, r.u32(), false); // rcv_nxt
      view.setUint16(at + 12, 0x0a00 | r.below(256), false);
      view.setUint16(at + 14, 1024 + r.below(60000), false);
      for (let k = 16; k < TCB_SIZE; k += 4) view.setUint32(at + k, r.below(3) === 0 ? r.u32() : 0, false);
    }
    for (let q = 0; q < 4; q++) {
      const at = EDC0_SGE_CTXT_START + r.below(EDC0_TCB_START / SGE_CTXT_SIZE - EDC0_SGE_CTXT_START / SGE_CTXT_SIZE) * SGE_CTXT_SIZE;
      for (let k = 0; k < SGE_CTXT_SIZE; k += 4) view.setUint32(at + k, r.u32(), false);
    }
    if (r.below(2) === 0) devlogWrite(dev, now, FW_DEVLOG_LEVEL_INFO, FW_DEVLOG_FACILITY_OFLD, 'ofld: %u connections active, %u TIDs in use\n', [r.below(500), r.below(NR_TCBS)]);
    if (r.below(5) === 0) devlogWrite(dev, now, FW_DEVLOG_LEVEL_NOTICE, FW_DEVLOG_FACILITY_PORT, 'port %u: PFC pause frames received: %u\n', [r.below(2), r.below(1000)]);
    dev.generation++;
    this.fillPayload(dev);
  },
  hostCrash() {
    // The adapter's firmware keeps running through a host crash: its state at the crash is its state before.
  },
};
