/**
 * nvme, for the PM981-like controller. Upstream nvme adds no device dump;
 * this stand-in dumps, in a crash recovery kernel before it resets the
 * controller, the controller registers, the doorbells, the admin and I/O
 * queues and the telemetry log from the controller memory buffer (simdump.ts
 * format), named "nvme_<bdf>". Its reset is nvme_disable_ctrl() and
 * nvme_enable_ctrl(): CC.EN cleared, then CSTS.RDY awaited for CAP.TO
 * (500 ms units). A controller the crash left in fatal status never
 * answers: the wait times out, "Device not ready; aborting reset" is
 * logged, and the controller is removed (-ENODEV), the dump already taken.
 */
import {
  CMB_ADMIN_CQ, CMB_ADMIN_SQ, CMB_IO_CQ, CMB_IO_SQ, CMB_TELEMETRY, CMB_TELEMETRY_SIZE, NVME_AQ_DEPTH, NVME_CC_ENABLE,
  NVME_CSTS_RDY, NVME_DEVICE_ID, NVME_IO_DEPTH, NVME_REG_ACQ, NVME_REG_AQA, NVME_REG_ASQ, NVME_REG_CAP, NVME_REG_CC,
  NVME_REG_CSTS, NVME_REG_DBS, nvme_admin_identify, nvme_common_command, nvme_completion, PCI_VENDOR_ID_SAMSUNG, pciDevfn,
  type PciDevice,
} from '../../machine/index.js';
import { viewOf } from '../../codec/index.js';
import { LOGLEVEL_ERR, LOGLEVEL_INFO, LOGLEVEL_WARNING } from '../constants.js';
import { printk } from '../printk.js';
import { ENODEV } from '../vmcore/vmcoredd.js';
import { addDeviceDump, hostClock, registerDevcd, waitNs, type PciDriver, type ProbeContext } from './core.js';
import { simDumpSize, writeSimDump } from './simdump.js';

export const NVME_DRIVER_NAME = 'nvme';
/** The controller's name (ctrl->device): nvme0 for the first. */
const CTRL = 'nvme0';

/** The sections of the controller's dump, read from the device. */
export function nvmeDumpSections(dev: PciDevice): Array<{ name: string; data: Uint8Array }> {
  const bar = dev.mem('bar0');
  const cmb = dev.mem('cmb');
  return [
    { name: 'regs', data: bar.slice(0, 0x40) },
    { name: 'doorbells', data: bar.slice(NVME_REG_DBS, NVME_REG_DBS + 16) },
    { name: 'admin_sq', data: cmb.slice(CMB_ADMIN_SQ, CMB_ADMIN_SQ + NVME_AQ_DEPTH * nvme_common_command.size) },
    { name: 'admin_cq', data: cmb.slice(CMB_ADMIN_CQ, CMB_ADMIN_CQ + NVME_AQ_DEPTH * nvme_completion.size) },
    { name: 'io_sq1', data: cmb.slice(CMB_IO_SQ, CMB_IO_SQ + NVME_IO_DEPTH * nvme_common_command.size) },
    { name: 'io_cq1', data: cmb.slice(CMB_IO_CQ, CMB_IO_CQ + NVME_IO_DEPTH * nvme_completion.size) },
    { name: 'telemetry', data: cmb.slice(CMB_TELEMETRY, CMB_TELEMETRY + CMB_TELEMETRY_SIZE) },
  ];
}

function ctrlLog(ctx: ProbeContext, text: string, level = LOGLEVEL_INFO): void {
  printk(ctx.kernel, `nvme ${CTRL}: ${text}`, level);
}

/** nvme_wait_ready(): polls CSTS.RDY for `want` until CAP.TO runs out; false on a timeout. */
function waitReady(ctx: ProbeContext, dev: PciDevice, want: boolean): boolean {
  const to = Number((dev.readReg64(NVME_REG_CAP) >> 24n) & 0xffn);
  const limitMs = (to + 1) * 500;
  for (let ms = 0; ms <= limitMs; ms += 100) {
    if (((dev.readReg32(NVME_REG_CSTS) & NVME_CSTS_RDY) !== 0) === want) return true;
    waitNs(ctx, 100_000_000n); // msleep(100)
  }
  return false;
}

export const nvmeDriver: PciDriver = {
  name: NVME_DRIVER_NAME,
  ids: [{ vendor: PCI_VENDOR_ID_SAMSUNG, device: NVME_DEVICE_ID }],
  probe(ctx, dev) {
    const name = NVME_DRIVER_NAME;
    if (ctx.recovery) {
      const sections = nvmeDumpSections(dev);
      addDeviceDump(ctx, name, dev, {
        dumpName: `${name}_${dev.bdf}`,
        size: simDumpSize(sections.map((s) => s.data.length)),
        callback: (buf) => {
          writeSimDump(buf, { domain: dev.addr.domain, bus: dev.addr.bus, devfn: pciDevfn(dev.addr) }, nvmeDumpSections(dev));
          return 0;
        },
      });
    }
    printk(ctx.kernel, `nvme ${dev.bdf}: enabling device (0000 -> 0002)`, LOGLEVEL_INFO);
    // nvme_reset_work(): a controller left enabled is disabled first.
    if (dev.readReg32(NVME_REG_CC) & NVME_CC_ENABLE || dev.readReg32(NVME_REG_CSTS) & NVME_CSTS_RDY) {
      dev.writeReg32(NVME_REG_CC, dev.readReg32(NVME_REG_CC) & ~NVME_CC_ENABLE, hostClock(ctx.kernel));
      if (!waitReady(ctx, dev, false)) {
        ctrlLog(ctx, 'Device not ready; aborting reset', LOGLEVEL_ERR);
        ctrlLog(ctx, `Removing after probe failure status: ${-ENODEV}`, LOGLEVEL_WARNING);
        dev.touch();
        return -ENODEV;
      }
    }
    const now = hostClock(ctx.kernel);
    dev.writeReg32(NVME_REG_AQA, ((NVME_AQ_DEPTH - 1) << 16) | (NVME_AQ_DEPTH - 1), now);
    dev.setReg64(NVME_REG_ASQ, dev.image.region('cmb').bus_addr + BigInt(CMB_ADMIN_SQ));
    dev.setReg64(NVME_REG_ACQ, dev.image.region('cmb').bus_addr + BigInt(CMB_ADMIN_CQ));
    dev.writeReg32(NVME_REG_CC, NVME_CC_ENABLE | (6 << 16) | (4 << 20), now); // IOSQES 6, IOCQES 4
    if (!waitReady(ctx, dev, true)) {
      ctrlLog(ctx, 'Device not ready; aborting initialisation', LOGLEVEL_ERR);
      ctrlLog(ctx, `Removing after probe failure status: ${-ENODEV}`, LOGLEVEL_WARNING);
      return -ENODEV;
    }
    // Identify Controller, through the admin queue.
    const cmb = dev.mem('cmb');
    nvme_common_command.encode({ ...nvme_common_command.zero(), opcode: nvme_admin_identify, command_id: 1, cdw10: 1 }, viewOf(cmb), CMB_ADMIN_SQ);
    dev.touch();
    dev.writeReg32(NVME_REG_DBS, 1, hostClock(ctx.kernel));
    ctrlLog(ctx, '1/0/0 default/read/poll queues');
    printk(ctx.kernel, ' nvme0n1: p1', LOGLEVEL_INFO);
    registerDevcd(ctx, name, dev, 'nvme0: controller enabled, 1 I/O queue\n', 16);
    return 0;
  },
};
