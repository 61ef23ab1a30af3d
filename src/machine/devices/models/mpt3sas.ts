/**
 * A SAS3008-like storage HBA (the Fusion-MPT SAS-3 controller mpt3sas
 * drives): the MPI2 system interface registers (mpi2.h offsets), and the
 * IOC's memory with its command queue (128 request frames of 128 bytes,
 * MPI2 SCSI IO requests), the reply descriptor post queue, and the IOC's
 * firmware log ring. On real hardware the request frames live in host
 * memory; here the controller keeps them, so its dump holds the commands
 * in flight at the crash.
 */
import { defineStruct, u16, u32, u8, bytes } from '../../../codec/index.js';
import type { RegionSpec } from '../image.js';
import { SIMDEV_REGION_CONFIG, SIMDEV_REGION_MEM, SIMDEV_REGION_REGS } from '../image.js';
import { PCI_CFG_SPACE_SIZE } from '../pci.js';
import type { DeviceClock, DeviceModel, PciDevice } from '../device.js';
import { clearLogRing, fillConfigSpace, stamp, writeText } from './common.js';

export const MPT3SAS_MODEL = 'sas3008';
export const PCI_VENDOR_ID_LSI_LOGIC = 0x1000;
export const MPI25_MFGPAGE_DEVID_SAS3008 = 0x0097;

export const MPT3SAS_REGS_SIZE = 0x400;
/** MPI2 system interface register offsets (mpi2.h). */
export const MPI2_DOORBELL_OFFSET = 0x00;
export const MPI2_WRITE_SEQUENCE_OFFSET = 0x04;
export const MPI2_HOST_DIAGNOSTIC_OFFSET = 0x08;
export const MPI2_HOST_INTERRUPT_STATUS_OFFSET = 0x30;
export const MPI2_HOST_INTERRUPT_MASK_OFFSET = 0x34;
export const MPI2_REPLY_FREE_HOST_INDEX_OFFSET = 0x48;
export const MPI2_REPLY_POST_HOST_INDEX_OFFSET = 0x6c;
/** Ours: the request queue's producer (host) and consumer (IOC) indices. */
export const SIM_REQUEST_PRODUCER_OFFSET = 0x80;
export const SIM_REQUEST_CONSUMER_OFFSET = 0x84;
/** Ours: commands completed since the IOC was initialised (u32). */
export const SIM_IOS_COMPLETED_OFFSET = 0x88;
export const MPI2_REQUEST_DESCRIPTOR_POST_LOW_OFFSET = 0xc0;

/** Doorbell: IOC state in bits 31:28, a function in 31:24 when the host writes it. */
export const MPI2_IOC_STATE_MASK = 0xf0000000;
export const MPI2_IOC_STATE_RESET = 0x00000000;
export const MPI2_IOC_STATE_READY = 0x10000000;
export const MPI2_IOC_STATE_OPERATIONAL = 0x20000000;
export const MPI2_IOC_STATE_FAULT = 0x40000000;
export const MPI2_DOORBELL_FUNCTION_SHIFT = 24;
export const MPI2_FUNCTION_IOC_INIT = 0x02;
export const MPI2_FUNCTION_IOC_MESSAGE_UNIT_RESET = 0x40;
export const MPI2_FUNCTION_SCSI_IO_REQUEST = 0x00;

// The IOC's memory.
export const IOC_MEM_SIZE = 0x10000;
export const IOC_REQUEST_QUEUE = 0x0000;
export const IOC_REQUEST_DEPTH = 128;
export const IOC_REQUEST_FRAME = 128;
export const IOC_REPLY_POST_QUEUE = 0x4000;
export const IOC_REPLY_DESC = 8;
export const IOC_LOG_RING = 0x8000;
export const IOC_LOG_RING_SIZE = 0x4000;

/** Mpi25SCSIIORequest_t, the part before its scatter-gather list (0x60 bytes), then the first SGE. */
export const mpi25_scsi_io_request = defineStruct('Mpi25SCSIIORequest_t', {
  DevHandle: u16,
  ChainOffset: u8,
  Function: u8,
  Reserved1: u16,
  Reserved2: u8,
  MsgFlags: u8,
  VP_ID: u8,
  VF_ID: u8,
  Reserved3: u16,
  SenseBufferLowAddress: u32,
  SGLFlags: u16,
  SenseBufferLength: u8,
  Reserved4: u8,
  SGLOffset: bytes(4),
  SkipCount: u32,
  DataLength: u32,
  BidirectionalDataLength: u32,
  IoFlags: u16,
  EEDPFlags: u16,
  EEDPBlockSize: u16,
  Reserved5: u16,
  SecondaryReferenceTag: u32,
  SecondaryApplicationTag: u16,
  ApplicationTagTranslationMask: u16,
  LUN: bytes(8),
  Control: u32,
  CDB: bytes(32),
  SGL: bytes(32),
});

/** Mpi2DefaultReplyDescriptor_t. */
export const mpi2_reply_descriptor = defineStruct('Mpi2DefaultReplyDescriptor_t', {
  ReplyFlags: u8,
  MSIxIndex: u8,
  SMID: u16,
  DescriptorTypeDependent2: u32,
});

function iocState(dev: PciDevice): number {
  return dev.readReg32(MPI2_DOORBELL_OFFSET) & MPI2_IOC_STATE_MASK;
}

function iocLog(dev: PciDevice, now: DeviceClock, line: string): void {
  writeText(dev.mem('ioc_mem').subarray(IOC_LOG_RING, IOC_LOG_RING + IOC_LOG_RING_SIZE), `${stamp(now.uptimeNs)} ${line}`);
  dev.touch();
}

/** Message unit reset: queues and indices cleared, the IOC READY again. */
function messageUnitReset(dev: PciDevice, now: DeviceClock): void {
  const mem = dev.mem('ioc_mem');
  mem.fill(0, IOC_REQUEST_QUEUE, IOC_LOG_RING);
  for (const off of [SIM_REQUEST_PRODUCER_OFFSET, SIM_REQUEST_CONSUMER_OFFSET, MPI2_REPLY_POST_HOST_INDEX_OFFSET, SIM_IOS_COMPLETED_OFFSET]) dev.setReg32(off, 0);
  dev.setReg32(MPI2_DOORBELL_OFFSET, MPI2_IOC_STATE_READY);
  iocLog(dev, now, 'IOC: message unit reset, state READY');
}

export const mpt3sasModel: DeviceModel = {
  name: MPT3SAS_MODEL,
  identity: {
    vendor: PCI_VENDOR_ID_LSI_LOGIC, device: MPI25_MFGPAGE_DEVID_SAS3008, revision: 2, classCode: 0x010700,
    subsystemVendor: PCI_VENDOR_ID_LSI_LOGIC, subsystem: 0x30e0,
    vendorName: 'Broadcom / LSI', deviceName: 'SAS3008 PCI-Express Fusion-MPT SAS-3', className: 'Serial Attached SCSI controller',
  },
  regions(): RegionSpec[] {
    return [
      { name: 'config', size: PCI_CFG_SPACE_SIZE, type: SIMDEV_REGION_CONFIG, busAddr: 0n },
      { name: 'bar0', size: MPT3SAS_REGS_SIZE, type: SIMDEV_REGION_REGS, busAddr: 0xfd400000n },
      { name: 'ioc_mem', size: IOC_MEM_SIZE, type: SIMDEV_REGION_MEM, busAddr: 0n },
    ];
  },
  powerOn(dev, now) {
    fillConfigSpace(dev);
    clearLogRing(dev.mem('ioc_mem').subarray(IOC_LOG_RING, IOC_LOG_RING + IOC_LOG_RING_SIZE));
    iocLog(dev, now, 'IOC: FWVersion(16.00.10.00), ChipRevision(0x02), BiosVersion(08.37.00.00)');
    iocLog(dev, now, 'IOC: 8 PHYs, SAS3 12.0 Gbps, firmware ready');
    messageUnitReset(dev, now);
  },
  payloadRanges() {
    return [];
  },
  fillPayload() {
    // No payload memory.
  },
  writeReg(dev, offset, value, now) {
    if (offset === MPI2_DOORBELL_OFFSET) {
      const fn = value >>> MPI2_DOORBELL_FUNCTION_SHIFT;
      if (fn === MPI2_FUNCTION_IOC_MESSAGE_UNIT_RESET) { messageUnitReset(dev, now); return; }
      if (fn === MPI2_FUNCTION_IOC_INIT && iocState(dev) === MPI2_IOC_STATE_READY) {
        dev.setReg32(MPI2_DOORBELL_OFFSET, MPI2_IOC_STATE_OPERATIONAL);
        iocLog(dev, now, `IOC: IOC_INIT, request queue depth ${IOC_REQUEST_DEPTH}, state OPERATIONAL`);
      }
      return;
    }
    dev.setReg32(offset, value);
  },
  run(dev, seconds, now) {
    if (iocState(dev) !== MPI2_IOC_STATE_OPERATIONAL) return;
    const r = dev.rng(3);
    const mem = dev.mem('ioc_mem');
    const view = new DataView(mem.buffer, mem.byteOffset, mem.byteLength);
    let prod = dev.readReg32(SIM_REQUEST_PRODUCER_OFFSET);
    let cons = dev.readReg32(SIM_REQUEST_CONSUMER_OFFSET);
    let reply = dev.readReg32(MPI2_REPLY_POST_HOST_INDEX_OFFSET);
    const n = Math.min(400, 20 + seconds * 12);
    for (let i = 0; i < n; i++) {
      // The host posts a READ(10) or WRITE(10); the IOC completes most of what is outstanding.
      if (prod - cons < IOC_REQUEST_DEPTH - 1) {
        const slot = prod % IOC_REQUEST_DEPTH;
        const write = r.below(3) === 0;
        const blocks = 8 << r.below(5);
        const lba = r.u32() & 0x3fffffff;
        const cdb = new Uint8Array(32);
        cdb[0] = write ? 0x2a : 0x28;
        new DataView(cdb.buffer).setUint32(2, lba, false);
        new DataView(cdb.buffer).setUint16(7, blocks, false);
        const sgl = new Uint8Array(32);
        new DataView(sgl.buffer).setUint32(0, 0xd1000000 | (blocks * 512), true);
        new DataView(sgl.buffer).setBigUint64(4, 0x100000000n + BigInt(r.below(1 << 20)) * 4096n, true);
        const lun = new Uint8Array(8);
        mpi25_scsi_io_request.encode({
          ...mpi25_scsi_io_request.zero(), DevHandle: 9 + r.below(8), Function: MPI2_FUNCTION_SCSI_IO_REQUEST,
          SenseBufferLength: 96, SGLOffset: Uint8Array.from([0x18, 0, 0, 0]), DataLength: blocks * 512, IoFlags: 10,
          LUN: lun, Control: write ? 0x01000000 : 0x02000000, CDB: cdb, SGL: sgl,
        }, view, IOC_REQUEST_QUEUE + slot * IOC_REQUEST_FRAME);
        prod++;
      }
      if (prod - cons > 4 && r.below(4) !== 0) {
        const smid = (cons % IOC_REQUEST_DEPTH) + 1;
        mpi2_reply_descriptor.encode({ ReplyFlags: 0, MSIxIndex: 0, SMID: smid, DescriptorTypeDependent2: 0 }, view,
          IOC_REPLY_POST_QUEUE + (reply % IOC_REQUEST_DEPTH) * IOC_REPLY_DESC);
        cons++;
        reply++;
      }
    }
    dev.setReg32(SIM_REQUEST_PRODUCER_OFFSET, prod);
    dev.setReg32(SIM_REQUEST_CONSUMER_OFFSET, cons);
    dev.setReg32(MPI2_REPLY_POST_HOST_INDEX_OFFSET, reply);
    dev.setReg32(SIM_IOS_COMPLETED_OFFSET, cons);
    if (r.below(3) === 0) iocLog(dev, now, `IOC: log_info(0x3112043${r.below(10)}): originator(PL), code(0x12), sub_code(0x043${r.below(10)}) handle(0x00${(9 + r.below(8)).toString(16)})`);
    dev.touch();
  },
  hostCrash() {
    // Commands the host posted stay in the queue: the dump shows what was in flight.
  },
};
