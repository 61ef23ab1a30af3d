/**
 * The PCI devices as hardware: their codecs against the C layouts, their
 * hardware files (small, deterministic per seed, rolled back with RAM,
 * removed at power-off), and what the workload, a host crash and a reset
 * do to them. Truths: the structure sizes of the headers they mirror, the
 * device image decoded by the test's own decoder, the bytes before a step.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cxgb4Model, decodeDeviceState, DeviceImage, encodeDeviceState, formatBdf, fw_devlog_e, MachineRoot, mpi25_scsi_io_request, mpi2_reply_descriptor,
  nvme_common_command, nvme_completion, NVME_REG_CC, NVME_REG_CSTS, nvmeModel, parseBdf, parseDeviceList, pci_config_header, PciBus, PciDevice,
  simdev_image_header, simdev_region, simdev_state, sim_log_ring, STANDARD_DEVICES,
} from '../../../src/machine/index.js';
import { closeSystem, openSystem, powerOff, runWorkload, systemDmesg } from '../../../src/kernel/index.js';
import { decodeDeviceImage } from '../../helpers/device_decoders.js';
import { MiB, powerOnTemp, type TempMachine } from '../../helpers/machine.js';

const NIC = '0000:02:00.4';
const clock = { uptimeNs: 5_000_000_000n };

describe('codecs against the layouts they mirror', () => {
  it('sizes: PCI type-0 header 64, fw_devlog_e 256 (t4fw_api.h), Mpi25SCSIIORequest_t 128 with CDB at 0x40, NVMe SQE 64 / CQE 16; ours 64, 48, 32, 16', () => {
    expect(pci_config_header.size).toBe(64);
    expect(pci_config_header.offsetOf.base_address).toBe(0x10);
    expect(pci_config_header.offsetOf.subsystem_vendor_id).toBe(0x2c);
    expect(pci_config_header.offsetOf.interrupt_line).toBe(0x3c);
    expect(fw_devlog_e.size).toBe(256);
    expect([fw_devlog_e.offsetOf.seqno, fw_devlog_e.offsetOf.level, fw_devlog_e.offsetOf.fmt, fw_devlog_e.offsetOf.params]).toEqual([8, 14, 16, 208]);
    expect(mpi25_scsi_io_request.size).toBe(128);
    expect([mpi25_scsi_io_request.offsetOf.LUN, mpi25_scsi_io_request.offsetOf.Control, mpi25_scsi_io_request.offsetOf.CDB, mpi25_scsi_io_request.offsetOf.SGL]).toEqual([0x34, 0x3c, 0x40, 0x60]);
    expect(mpi2_reply_descriptor.size).toBe(8);
    expect(nvme_common_command.size).toBe(64);
    expect(nvme_common_command.offsetOf.prp1).toBe(24);
    expect(nvme_common_command.offsetOf.cdw10).toBe(40);
    expect(nvme_completion.size).toBe(16);
    expect([simdev_image_header.size, simdev_region.size, simdev_state.size, sim_log_ring.size]).toEqual([64, 48, 32, 16]);
  });

  it('PCI addresses: "0000:02:00.4" and "02:00.4" name the same function; a bad one is one usage line', () => {
    expect(formatBdf(parseBdf('02:00.4'))).toBe('0000:02:00.4');
    expect(parseBdf('0001:ff:1f.7')).toEqual({ domain: 1, bus: 0xff, device: 0x1f, fn: 7 });
    for (const bad of ['zz', '02:00', '02:20.0', '02:00.8', '']) expect(() => parseBdf(bad)).toThrow(/is not a PCI address|above/);
    expect(parseDeviceList('none')).toEqual([]);
    expect(parseDeviceList('nic,nvme').map((s) => s.bdf)).toEqual(['0000:02:00.4', '0000:04:00.0']);
    expect(() => parseDeviceList('gpu')).toThrow(/expected all, none, or a list of nic, hba, nvme/);
  });
});

describe('a device\'s hardware file', () => {
  it('keeps the image without its payload: it decodes, and the payload regenerated from seed and generation equals what the device held', () => {
    const dev = PciDevice.create(parseBdf(NIC), cxgb4Model, 77);
    cxgb4Model.powerOn(dev, clock);
    cxgb4Model.run(dev, 3, clock);
    const file = encodeDeviceState(dev.image, dev.seed, dev.generation, cxgb4Model.payloadRanges(dev));
    // 4 MiB of on-chip memory, mostly payload: the file is a few tens of KiB.
    expect(dev.image.bytes.length).toBeGreaterThan(4 << 20);
    expect(file.length).toBeLessThan(64 << 10);
    const { state, image } = decodeDeviceState(file, 'test');
    expect([state.seed, state.generation]).toEqual([77, 1]);
    const back = new PciDevice(dev.addr, cxgb4Model, image, state.seed, state.generation);
    cxgb4Model.fillPayload(back);
    expect(Buffer.from(back.image.bytes).equals(Buffer.from(dev.image.bytes))).toBe(true);
    // The test's own decoder reads the image the same way.
    const d = decodeDeviceImage(Buffer.from(dev.image.bytes));
    expect([d.model, d.vendor, d.device, [...d.regions.keys()]]).toEqual(['cxgb4-t6', 0x1425, 0x6408, ['config', 'bar0', 'edc0']]);
    expect(d.regions.get('config')!.bytes.readUInt16LE(0)).toBe(0x1425);
  });

  it('a damaged file fails with one line naming it: bad magic, bad CRC32, cut short', () => {
    const dev = PciDevice.create(parseBdf(NIC), nvmeModel, 1);
    nvmeModel.powerOn(dev, clock);
    const good = Buffer.from(encodeDeviceState(dev.image, 1, 0, []));
    const magic = Buffer.from(good); magic[0] ^= 1;
    expect(() => decodeDeviceState(magic, 'F')).toThrow(/^F: not a device state file \(bad magic\)$/);
    const crc = Buffer.from(good); crc[20] ^= 1;
    expect(() => decodeDeviceState(crc, 'F')).toThrow(/^F: the image does not match its CRC32$/);
    expect(() => decodeDeviceState(good.subarray(0, good.length - 9), 'F')).toThrow(/does not inflate/);
    expect(() => DeviceImage.decode(new Uint8Array(10), 'G')).toThrow(/G: 10 bytes is shorter than the image header/);
  });

  it('the same seed gives the same devices; another seed does not', () => {
    const make = (seed: number): Buffer => {
      const dev = PciDevice.create(parseBdf(NIC), cxgb4Model, seed);
      cxgb4Model.powerOn(dev, clock);
      cxgb4Model.run(dev, 2, clock);
      return Buffer.from(dev.image.bytes);
    };
    expect(make(5).equals(make(5))).toBe(true);
    expect(make(5).equals(make(6))).toBe(false);
  });

  it('the NVMe controller: a host crash leaves it wedged (CSTS.CFS), every later write is lost; a power-on clears it', () => {
    const dev = PciDevice.create(parseBdf('04:00.0'), nvmeModel, 3);
    nvmeModel.powerOn(dev, clock);
    dev.writeReg32(NVME_REG_CC, 1, clock);
    expect(dev.readReg32(NVME_REG_CSTS)).toBe(1);
    nvmeModel.hostCrash(dev, clock);
    expect([dev.readReg32(NVME_REG_CSTS), dev.wedged]).toEqual([3, true]);
    dev.writeReg32(NVME_REG_CC, 0, clock);
    expect([dev.readReg32(NVME_REG_CC), dev.readReg32(NVME_REG_CSTS)]).toEqual([1, 3]);
    nvmeModel.powerOn(dev, clock);
    expect([dev.readReg32(NVME_REG_CSTS), dev.wedged]).toEqual([0, false]);
  });
});

describe('the devices of a running machine', () => {
  let m: TempMachine;
  let devFile: string;
  beforeAll(() => {
    m = powerOnTemp({ mem: 32n * MiB, profile: 'idle', seed: 9 }, 'devices');
    devFile = path.join(m.dir, 'lib', 'machine', 'devices', NIC);
  });
  afterAll(() => m?.destroy());

  it('power-on fits the three standard functions, one 0600 file each under lib/machine/devices, all small', () => {
    const names = fs.readdirSync(path.dirname(devFile)).sort();
    expect(names).toEqual(STANDARD_DEVICES.map((s) => s.bdf));
    for (const n of names) {
      const st = fs.statSync(path.join(path.dirname(devFile), n));
      expect(st.mode & 0o777).toBe(0o600);
      expect(st.size).toBeLessThan(64 << 10);
    }
  });

  it('machine run changes the devices (counters, device log, TCBs); a step rolled back puts the file back as it was', () => {
    closeSystem(m.sys);
    const before = fs.readFileSync(devFile);
    m.sys = openSystem(new MachineRoot(m.dir));
    runWorkload(m.sys, 3);
    m.sys.ram.flush();
    expect(fs.readFileSync(devFile).equals(before)).toBe(false);
    // A kill before the commit: recovery rolls the step back, device files with RAM.
    m.sys.ram.rollBack();
    m.sys.lock?.release();
    expect(fs.readFileSync(devFile).equals(before)).toBe(true);
    m.sys = openSystem(new MachineRoot(m.dir));
    runWorkload(m.sys, 3);
    closeSystem(m.sys);
    const after = PciBus.open(new MachineRoot(m.dir)).device(NIC);
    expect(after.generation).toBe(1);
    m.sys = openSystem(new MachineRoot(m.dir));
  });

  it('power-off removes the device files: the devices lose their state with power', () => {
    closeSystem(m.sys);
    powerOff(new MachineRoot(m.dir));
    expect(fs.existsSync(path.dirname(devFile)) ? fs.readdirSync(path.dirname(devFile)) : []).toEqual([]);
  });
});

describe('power-on --devices none', () => {
  it('fits no device; the kernel boots with no driver line', () => {
    const m = powerOnTemp({ mem: 32n * MiB, profile: 'idle', seed: 1, devices: [] }, 'nodev');
    try {
      expect(PciBus.open(new MachineRoot(m.dir)).addresses()).toEqual([]);
      expect(systemDmesg(m.sys)).not.toMatch(/cxgb4|mpt3sas|nvme/);
    } finally {
      m.destroy();
    }
  });
});
