/**
 * cxgb4, for the T6-like adapter: in a crash recovery kernel its probe
 * collects a cudbg dump of the adapter before it resets it
 * (cxgb4_cudbg_vmcore_add_dump in init_one), named "cxgb4_<bdf>": the
 * firmware device log, the register file, and on-chip memory EDC0 with the
 * Tx and Rx payload chunks left out, each entity zlib-compressed in chunks
 * (cudbg_lib.c). Then it resets the chip and brings the ports up.
 *
 * The dump buffer is sized as cxgb4_get_dump_length() sizes the ethtool
 * dump (the entities' sizes, capped at CUDBG_DUMP_BUFF_SIZE) rather than
 * upstream's fixed 32 MiB, so it fits the small crash kernels the tests
 * boot; the 32 MiB complaint is reproduced by a crash kernel too small for
 * even this.
 */
import {
  CIM_PF_MAILBOX_DATA_A, CXGB4_DEVICE_ID, DEVLOG_SIZE_A, DEVLOG_START_A, EDRAM0_ENABLE_F, FW_HELLO_CMD, FW_PORT_CMD, MA_EDRAM0_BAR_A,
  MA_TARGET_MEM_ENABLE_A, PCI_VENDOR_ID_CHELSIO, PCIE_FW_A, PCIE_FW_ERR_F, PIORST_F, PIORSTMODE_F, PL_REV_A, PL_RST_A, TP_PMM_RX_BASE_A,
  TP_PMM_RX_SIZE_A, TP_PMM_TX_BASE_A, TP_PMM_TX_SIZE_A, type PciDevice,
} from '../../machine/index.js';
import { LOGLEVEL_ERR, LOGLEVEL_WARNING } from '../constants.js';
import { isVmallocAddr, vfree, vmallocUser } from '../mm/vmalloc.js';
import { ENOMEM } from '../vmcore/vmcoredd.js';
import {
  chelsioChipCode, CUDBG_CHUNK_SIZE, CUDBG_COMPRESS_BUFF_SIZE, CUDBG_DEV_LOG, CUDBG_DUMP_BUFF_SIZE, CUDBG_EDC0, CUDBG_EDC1,
  CUDBG_MIN_SIZE, CUDBG_REG_DUMP, CUDBG_STATUS_ENTITY_NOT_FOUND, CUDBG_ZLIB_WORKSPACE, CudbgWriter,
} from './cudbg.js';
import { addDeviceDump, devLog, hostClock, registerDevcd, type PciDriver, type ProbeContext } from './core.js';

export const CXGB4_DRIVER_NAME = 'cxgb4';
/** CHELSIO_T6. */
const CHELSIO_T6 = 0x6;
const MiB = 1 << 20;

/** EDRAM0's size in bytes when it is enabled (MA_EDRAM0_BAR gives MiB), else 0. */
function edc0Bytes(dev: PciDevice): number {
  if (!(dev.readReg32(MA_TARGET_MEM_ENABLE_A) & EDRAM0_ENABLE_F)) return 0;
  return (dev.readReg32(MA_EDRAM0_BAR_A) & 0xfff) * MiB;
}

/** cxgb4_get_dump_length(adap, CXGB4_ETH_DUMP_ALL) for the entities this adapter has, capped at CUDBG_DUMP_BUFF_SIZE. */
export function cxgb4DumpLength(dev: PciDevice): number {
  const len = dev.image.region('bar0').size + BigInt(dev.readReg32(DEVLOG_SIZE_A)) + BigInt(edc0Bytes(dev));
  return Math.min(Number(len), CUDBG_DUMP_BUFF_SIZE);
}

/** The Tx and Rx payload ranges of EDC0, chunk-aligned inward as cudbg_read_fw_mem() aligns them. */
export function payloadChunks(dev: PciDevice): Array<{ start: number; end: number }> {
  const up = (n: number): number => Math.ceil(n / CUDBG_CHUNK_SIZE) * CUDBG_CHUNK_SIZE;
  const down = (n: number): number => Math.floor(n / CUDBG_CHUNK_SIZE) * CUDBG_CHUNK_SIZE;
  return [[TP_PMM_TX_BASE_A, TP_PMM_TX_SIZE_A], [TP_PMM_RX_BASE_A, TP_PMM_RX_SIZE_A]]
    .map(([b, s]) => ({ start: up(dev.readReg32(b)), end: down(dev.readReg32(b) + dev.readReg32(s)) }))
    .filter((p) => p.end > p.start);
}

/** cxgb4_cudbg_collect(): the dump of `dev` into `buf` (zeroed). */
function cudbgCollect(ctx: ProbeContext, dev: PciDevice, buf: Uint8Array): number {
  // cudbg_alloc_compress_buff(): the scratch buffer and zlib workspace, from this kernel's memory.
  const scratchBytes = CUDBG_COMPRESS_BUFF_SIZE + CUDBG_ZLIB_WORKSPACE;
  const scratch = vmallocUser(ctx.kernel, ctx.buddy, scratchBytes);
  if (scratch === null) {
    devLog(ctx, CXGB4_DRIVER_NAME, dev, `Fail allocating compression buffer ret: ${-ENOMEM}.  Continuing without compression.`, LOGLEVEL_WARNING);
  }
  const w = new CudbgWriter(buf, scratch !== null);
  const edc0 = dev.mem('edc0');
  // cxgb4_collect_hw_dump order, then cxgb4_collect_mem_dump.
  w.entity(CUDBG_DEV_LOG, () => {
    const start = dev.readReg32(DEVLOG_START_A);
    const size = dev.readReg32(DEVLOG_SIZE_A);
    return { pieces: [edc0.slice(start, start + size)] };
  });
  w.entity(CUDBG_REG_DUMP, () => ({ pieces: [dev.mem('bar0').slice()] }));
  w.entity(CUDBG_EDC0, () => {
    const total = edc0Bytes(dev);
    if (total === 0) return { error: CUDBG_STATUS_ENTITY_NOT_FOUND };
    const skip = payloadChunks(dev);
    const pieces: Uint8Array[] = [];
    for (let read = 0; read < total; read += CUDBG_CHUNK_SIZE) {
      const bytes = Math.min(CUDBG_CHUNK_SIZE, total - read);
      // A chunk wholly inside a payload region is not read: the cleared scratch buffer goes in.
      const inPayload = skip.some((p) => read >= p.start && read + bytes <= p.end);
      pieces.push(inPayload ? new Uint8Array(bytes) : edc0.slice(read, read + bytes));
    }
    return { pieces };
  });
  w.entity(CUDBG_EDC1, () => ({ error: CUDBG_STATUS_ENTITY_NOT_FOUND }));
  w.finish(chelsioChipCode(CHELSIO_T6, dev.readReg32(PL_REV_A) & 0xf));
  if (scratch !== null && isVmallocAddr(scratch)) vfree(ctx.kernel, ctx.buddy, scratch, scratchBytes);
  return 0;
}

export const cxgb4Driver: PciDriver = {
  name: CXGB4_DRIVER_NAME,
  ids: [{ vendor: PCI_VENDOR_ID_CHELSIO, device: CXGB4_DEVICE_ID }],
  probe(ctx, dev) {
    const name = CXGB4_DRIVER_NAME;
    if (ctx.recovery) {
      // Collect hardware state and append to /proc/vmcore, before the adapter is touched.
      addDeviceDump(ctx, name, dev, {
        dumpName: `${name}_${dev.bdf}`,
        size: CUDBG_MIN_SIZE + cxgb4DumpLength(dev),
        callback: (buf) => cudbgCollect(ctx, dev, buf),
      });
    }
    if (dev.readReg32(PCIE_FW_A) & PCIE_FW_ERR_F) {
      devLog(ctx, name, dev, 'Firmware reports adapter error, resetting', LOGLEVEL_ERR);
    }
    const now = hostClock(ctx.kernel);
    dev.writeReg32(PL_RST_A, PIORSTMODE_F | PIORST_F, now);
    dev.writeReg32(CIM_PF_MAILBOX_DATA_A, FW_HELLO_CMD, now);
    devLog(ctx, name, dev, 'Coming up as MASTER: Initializing adapter');
    devLog(ctx, name, dev, `Chelsio T62100-CR rev ${dev.readReg32(PL_REV_A)} 100GBASE-R 2 ports, EDC0 ${edc0Bytes(dev) / MiB} MB`);
    dev.writeReg32(CIM_PF_MAILBOX_DATA_A, FW_PORT_CMD, now);
    devLog(ctx, name, dev, 'eth0: link up, 100Gbps, full-duplex, Tx/Rx PAUSE');
    registerDevcd(ctx, name, dev, 'cxgb4: FW_HELLO master PF4; FW_PORT_CMD ports 0,1 link up\n', 64);
    return 0;
  },
};
