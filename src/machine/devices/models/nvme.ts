/**
 * An NVMe controller (a PM981-like SSD): the controller registers of the
 * NVMe 1.3 specification (offsets as include/linux/nvme.h names them), and
 * a controller memory buffer (CMB) holding its admin and I/O queues and a
 * telemetry log. A host crash leaves it wedged: its firmware sees the host
 * stop servicing it, asserts, and reports Controller Fatal Status; it then
 * ignores every register write until it is power-cycled, so the next
 * kernel's reset times out.
 */
import { defineStruct, u16, u32, u64, u8 } from '../../../codec/index.js';
import type { RegionSpec } from '../image.js';
import { SIMDEV_REGION_CONFIG, SIMDEV_REGION_MEM, SIMDEV_REGION_REGS } from '../image.js';
import { PCI_CFG_SPACE_SIZE } from '../pci.js';
import type { DeviceClock, DeviceModel, PciDevice } from '../device.js';
import { clearLogRing, fillConfigSpace, stamp, writeText } from './common.js';

export const NVME_MODEL = 'nvme-pm981';
export const PCI_VENDOR_ID_SAMSUNG = 0x144d;
export const NVME_DEVICE_ID = 0xa808;

export const NVME_REGS_SIZE = 0x4000;
/** Controller registers (enum nvme_registers). */
export const NVME_REG_CAP = 0x0000;
export const NVME_REG_VS = 0x0008;
export const NVME_REG_INTMS = 0x000c;
export const NVME_REG_INTMC = 0x0010;
export const NVME_REG_CC = 0x0014;
export const NVME_REG_CSTS = 0x001c;
export const NVME_REG_NSSR = 0x0020;
export const NVME_REG_AQA = 0x0024;
export const NVME_REG_ASQ = 0x0028;
export const NVME_REG_ACQ = 0x0030;
export const NVME_REG_CMBLOC = 0x0038;
export const NVME_REG_CMBSZ = 0x003c;
/** Doorbells with CAP.DSTRD 0: SQyTDBL at 0x1000 + 8y, CQyHDBL at 0x1004 + 8y. */
export const NVME_REG_DBS = 0x1000;

export const NVME_CC_ENABLE = 1 << 0;
export const NVME_CSTS_RDY = 1 << 0;
export const NVME_CSTS_CFS = 1 << 1;
/** CAP.TO, in 500 ms units (NVME_CAP_TIMEOUT). */
export const NVME_CAP_TO = 20;

// The controller memory buffer.
export const NVME_CMB_SIZE = 0x10000;
export const CMB_ADMIN_SQ = 0x0000;
export const CMB_ADMIN_CQ = 0x1000;
export const NVME_AQ_DEPTH = 32;
export const CMB_TELEMETRY = 0x2000;
export const CMB_TELEMETRY_SIZE = 0x2000;
export const CMB_IO_SQ = 0x4000;
export const CMB_IO_CQ = 0x8000;
export const NVME_IO_DEPTH = 256;

/** struct nvme_common_command (64 bytes). */
export const nvme_common_command = defineStruct('nvme_common_command', {
  opcode: u8,
  flags: u8,
  command_id: u16,
  nsid: u32,
  cdw2: u64,
  metadata: u64,
  prp1: u64,
  prp2: u64,
  cdw10: u32,
  cdw11: u32,
  cdw12: u32,
  cdw13: u32,
  cdw14: u32,
  cdw15: u32,
});

/** struct nvme_completion (16 bytes). */
export const nvme_completion = defineStruct('nvme_completion', {
  result: u64,
  sq_head: u16,
  sq_id: u16,
  command_id: u16,
  /** Status field; bit 0 is the phase tag. */
  status: u16,
});

export const nvme_admin_get_log_page = 0x02;
export const nvme_admin_identify = 0x06;
export const nvme_admin_set_features = 0x09;
export const nvme_admin_keep_alive = 0x18;
export const nvme_cmd_write = 0x01;
export const nvme_cmd_read = 0x02;

function telemetry(dev: PciDevice, now: DeviceClock, line: string): void {
  writeText(dev.mem('cmb').subarray(CMB_TELEMETRY, CMB_TELEMETRY + CMB_TELEMETRY_SIZE), `${stamp(now.uptimeNs)} ${line}`);
  dev.touch();
}

function view(dev: PciDevice): DataView {
  const m = dev.mem('cmb');
  return new DataView(m.buffer, m.byteOffset, m.byteLength);
}

/** The controller executes the admin commands between its head and the new tail, posting completions. */
function processAdmin(dev: PciDevice, tail: number): void {
  const v = view(dev);
  let head = dev.readReg32(NVME_REG_DBS + 4) & 0xffff; // CQ0 head, as the host last wrote it
  const sqHead = (dev.readReg32(NVME_REG_DBS) >>> 16) & 0xffff; // ours: the SQ head kept in the doorbell's high half
  let i = sqHead;
  while (i !== tail) {
    const cmd = nvme_common_command.decode(v, CMB_ADMIN_SQ + i * nvme_common_command.size);
    i = (i + 1) % NVME_AQ_DEPTH;
    nvme_completion.encode({ result: 0n, sq_head: i, sq_id: 0, command_id: cmd.command_id, status: 1 }, v, CMB_ADMIN_CQ + head * nvme_completion.size);
    head = (head + 1) % NVME_AQ_DEPTH;
  }
  dev.setReg32(NVME_REG_DBS, ((i & 0xffff) << 16) | (tail & 0xffff));
}

export const nvmeModel: DeviceModel = {
  name: NVME_MODEL,
  identity: {
    vendor: PCI_VENDOR_ID_SAMSUNG, device: NVME_DEVICE_ID, revision: 0, classCode: 0x010802,
    subsystemVendor: PCI_VENDOR_ID_SAMSUNG, subsystem: 0xa801,
    vendorName: 'Samsung Electronics Co Ltd', deviceName: 'NVMe SSD Controller SM981/PM981/PM983', className: 'Non-Volatile memory controller',
  },
  regions(): RegionSpec[] {
    return [
      { name: 'config', size: PCI_CFG_SPACE_SIZE, type: SIMDEV_REGION_CONFIG, busAddr: 0n },
      { name: 'bar0', size: NVME_REGS_SIZE, type: SIMDEV_REGION_REGS, busAddr: 0xfe600000n },
      { name: 'cmb', size: NVME_CMB_SIZE, type: SIMDEV_REGION_MEM, busAddr: 0xfe610000n },
    ];
  },
  powerOn(dev, now) {
    fillConfigSpace(dev);
    dev.setWedged(false);
    dev.mem('cmb').fill(0);
    clearLogRing(dev.mem('cmb').subarray(CMB_TELEMETRY, CMB_TELEMETRY + CMB_TELEMETRY_SIZE));
    // CAP: MQES 1023, CQR, TO, DSTRD 0, CSS NVM; VS 1.3.
    dev.setReg64(NVME_REG_CAP, 1023n | (1n << 16n) | (BigInt(NVME_CAP_TO) << 24n) | (1n << 37n));
    dev.setReg32(NVME_REG_VS, 0x00010300);
    dev.setReg32(NVME_REG_CC, 0);
    dev.setReg32(NVME_REG_CSTS, 0);
    dev.setReg32(NVME_REG_CMBLOC, 1);
    dev.setReg32(NVME_REG_CMBSZ, (NVME_CMB_SIZE >> 12) << 12 | 0x1f);
    telemetry(dev, now, 'fw EXA7301Q: power on, NAND 512 GB, 8 channels, controller reset complete');
  },
  payloadRanges() {
    return [];
  },
  fillPayload() {
    // No payload memory.
  },
  writeReg(dev, offset, value, now) {
    // A controller in fatal status answers nothing: the write is lost.
    if (dev.wedged) return;
    if (offset === NVME_REG_CC) {
      const was = dev.readReg32(NVME_REG_CC) & NVME_CC_ENABLE;
      dev.setReg32(NVME_REG_CC, value);
      if (was && !(value & NVME_CC_ENABLE)) {
        // Controller reset: queues dropped, RDY cleared.
        const m = dev.mem('cmb');
        m.fill(0, CMB_ADMIN_SQ, CMB_TELEMETRY);
        m.fill(0, CMB_IO_SQ, NVME_CMB_SIZE);
        for (let d = NVME_REG_DBS; d < NVME_REG_DBS + 16; d += 4) dev.setReg32(d, 0);
        dev.setReg32(NVME_REG_CSTS, 0);
        telemetry(dev, now, 'controller reset (CC.EN 1->0)');
      } else if (!was && (value & NVME_CC_ENABLE)) {
        dev.setReg32(NVME_REG_CSTS, NVME_CSTS_RDY);
        telemetry(dev, now, 'controller enabled (CC.EN 0->1), ready');
      }
      return;
    }
    if (offset === NVME_REG_DBS) {
      processAdmin(dev, value % NVME_AQ_DEPTH);
      return;
    }
    dev.setReg32(offset, value);
  },
  run(dev, seconds, now) {
    if (dev.wedged || !(dev.readReg32(NVME_REG_CSTS) & NVME_CSTS_RDY)) return;
    const r = dev.rng(4);
    const v = view(dev);
    // The host reads and writes: I/O commands in SQ1, their completions in CQ1; the tail and head move.
    let tail = dev.readReg32(NVME_REG_DBS + 8) & 0xffff;
    let cqHead = dev.readReg32(NVME_REG_DBS + 12) & 0xffff;
    const n = Math.min(600, 30 + seconds * 20);
    for (let i = 0; i < n; i++) {
      const write = r.below(3) === 0;
      const slba = BigInt(r.u32()) * 8n;
      nvme_common_command.encode({
        opcode: write ? nvme_cmd_write : nvme_cmd_read, flags: 0, command_id: (tail + 1) & 0xffff, nsid: 1, cdw2: 0n, metadata: 0n,
        prp1: 0x100000000n + BigInt(r.below(1 << 20)) * 4096n, prp2: 0n,
        cdw10: Number(slba & 0xffffffffn), cdw11: Number(slba >> 32n), cdw12: (8 << r.below(4)) - 1, cdw13: 0, cdw14: 0, cdw15: 0,
      }, v, CMB_IO_SQ + tail * nvme_common_command.size);
      tail = (tail + 1) % NVME_IO_DEPTH;
      if (r.below(8) !== 0) {
        nvme_completion.encode({ result: 0n, sq_head: tail, sq_id: 1, command_id: tail, status: 1 }, v, CMB_IO_CQ + cqHead * nvme_completion.size);
        cqHead = (cqHead + 1) % NVME_IO_DEPTH;
      }
    }
    dev.setReg32(NVME_REG_DBS + 8, tail);
    dev.setReg32(NVME_REG_DBS + 12, cqHead);
    if (r.below(3) === 0) telemetry(dev, now, `smart: temperature ${35 + r.below(20)} C, percentage used ${r.below(5)}%, media errors 0`);
    dev.touch();
  },
  hostCrash(dev, now) {
    if (!(dev.readReg32(NVME_REG_CSTS) & NVME_CSTS_RDY)) return;
    // The host stopped answering (no keep-alive, interrupts unacknowledged): the firmware asserts.
    telemetry(dev, now, 'keep-alive timeout: host unresponsive, I/O queue 1 stalled');
    telemetry(dev, now, 'ASSERT ftl_flush.c:1187 (flush_wait_host): controller halted, CSTS.CFS set');
    dev.setReg32(NVME_REG_CSTS, NVME_CSTS_RDY | NVME_CSTS_CFS);
    dev.setWedged(true);
  },
};
