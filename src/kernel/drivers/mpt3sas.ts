/**
 * mpt3sas, for the SAS3008-like HBA. Upstream mpt3sas adds no device
 * dump; this stand-in does what the vmcoredd API invites a storage driver
 * to do: in a crash recovery kernel, before its message unit reset, it
 * dumps the system interface registers, the command queue with the
 * requests in flight at the crash, the reply post queue and the IOC's
 * log (simdump.ts format), named "mpt3sas_<bdf>".
 */
import {
  IOC_LOG_RING, IOC_LOG_RING_SIZE, IOC_REPLY_DESC, IOC_REPLY_POST_QUEUE, IOC_REQUEST_DEPTH, IOC_REQUEST_FRAME, IOC_REQUEST_QUEUE,
  MPI25_MFGPAGE_DEVID_SAS3008, MPI2_DOORBELL_FUNCTION_SHIFT, MPI2_DOORBELL_OFFSET, MPI2_FUNCTION_IOC_INIT,
  MPI2_FUNCTION_IOC_MESSAGE_UNIT_RESET, MPI2_IOC_STATE_MASK, MPI2_IOC_STATE_OPERATIONAL, PCI_VENDOR_ID_LSI_LOGIC, pciDevfn,
  SIM_REQUEST_CONSUMER_OFFSET, SIM_REQUEST_PRODUCER_OFFSET, type PciDevice,
} from '../../machine/index.js';
import { LOGLEVEL_ERR, LOGLEVEL_INFO } from '../constants.js';
import { printk } from '../printk.js';
import { ENODEV } from '../vmcore/vmcoredd.js';
import { addDeviceDump, hostClock, registerDevcd, type PciDriver, type ProbeContext } from './core.js';
import { simDumpSize, writeSimDump } from './simdump.js';

export const MPT3SAS_DRIVER_NAME = 'mpt3sas';

/** The sections of the HBA's dump, read from the device. */
export function mpt3sasDumpSections(dev: PciDevice): Array<{ name: string; data: Uint8Array }> {
  const mem = dev.mem('ioc_mem');
  return [
    { name: 'sysif_regs', data: dev.mem('bar0').slice() },
    { name: 'request_queue', data: mem.slice(IOC_REQUEST_QUEUE, IOC_REQUEST_QUEUE + IOC_REQUEST_DEPTH * IOC_REQUEST_FRAME) },
    { name: 'reply_queue', data: mem.slice(IOC_REPLY_POST_QUEUE, IOC_REPLY_POST_QUEUE + IOC_REQUEST_DEPTH * IOC_REPLY_DESC) },
    { name: 'ioc_log', data: mem.slice(IOC_LOG_RING, IOC_LOG_RING + IOC_LOG_RING_SIZE) },
  ];
}

/** "mpt3sas_cm0: <text>": the driver's own prefix (ioc->name). */
function iocLog(ctx: ProbeContext, text: string, level = LOGLEVEL_INFO): void {
  printk(ctx.kernel, `mpt3sas_cm0: ${text}`, level);
}

export const mpt3sasDriver: PciDriver = {
  name: MPT3SAS_DRIVER_NAME,
  ids: [{ vendor: PCI_VENDOR_ID_LSI_LOGIC, device: MPI25_MFGPAGE_DEVID_SAS3008 }],
  probe(ctx, dev) {
    const name = MPT3SAS_DRIVER_NAME;
    if (ctx.recovery) {
      const sections = mpt3sasDumpSections(dev);
      addDeviceDump(ctx, name, dev, {
        dumpName: `${name}_${dev.bdf}`,
        size: simDumpSize(sections.map((s) => s.data.length)),
        callback: (buf) => {
          // Read again inside the callback: what the device holds when the buffer is there.
          writeSimDump(buf, { domain: dev.addr.domain, bus: dev.addr.bus, devfn: pciDevfn(dev.addr) }, mpt3sasDumpSections(dev));
          return 0;
        },
      });
    }
    const inFlight = dev.readReg32(SIM_REQUEST_PRODUCER_OFFSET) - dev.readReg32(SIM_REQUEST_CONSUMER_OFFSET);
    iocLog(ctx, `LSISAS3008: FWVersion(16.00.10.00), ChipRevision(0x02), BiosVersion(08.37.00.00)${inFlight ? `; ${inFlight} requests outstanding, discarded by the reset` : ''}`);
    const now = hostClock(ctx.kernel);
    dev.writeReg32(MPI2_DOORBELL_OFFSET, MPI2_FUNCTION_IOC_MESSAGE_UNIT_RESET << MPI2_DOORBELL_FUNCTION_SHIFT, now);
    dev.writeReg32(MPI2_DOORBELL_OFFSET, MPI2_FUNCTION_IOC_INIT << MPI2_DOORBELL_FUNCTION_SHIFT, now);
    if ((dev.readReg32(MPI2_DOORBELL_OFFSET) & MPI2_IOC_STATE_MASK) !== MPI2_IOC_STATE_OPERATIONAL) {
      iocLog(ctx, `_base_make_ioc_operational: failed, doorbell 0x${dev.readReg32(MPI2_DOORBELL_OFFSET).toString(16)}`, LOGLEVEL_ERR);
      return -ENODEV;
    }
    iocLog(ctx, 'sending port enable !!');
    iocLog(ctx, 'port enable: SUCCESS');
    registerDevcd(ctx, name, dev, 'mpt3sas_cm0: IOC_INIT, state OPERATIONAL; port enable SUCCESS\n', 64);
    return 0;
  },
};
