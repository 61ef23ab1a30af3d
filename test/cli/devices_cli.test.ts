/**
 * machine lspci and machine device as an admin runs them: the lines lspci
 * -Dnn would print, the JSON, the raw image, and one-line failures with the
 * documented status. The image is read back by the test's own decoder.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, expectCleanFailure, expectOk, EX_DATAERR, EX_NOINPUT, EX_USAGE, runTool as run } from '../helpers/cli.js';
import { makeTempDir, removeTempDir } from '../helpers/machine.js';
import { decodeDeviceImage } from '../helpers/device_decoders.js';

let dir: string;
let root: string;
beforeAll(() => {
  ensureBuilt();
  dir = makeTempDir('devcli');
  root = path.join(dir, 'm');
  expectOk(run('machine', root, ['power-on', '--mem', '64M', '--profile', 'idle', '--seed', '2']));
});
afterAll(() => removeTempDir(dir));

describe('machine lspci and machine device', () => {
  it('lspci: one lspci -Dnn line per function, in bus order; --json the same with ids and regions', () => {
    expect(expectOk(run('machine', root, ['lspci']))).toBe(
      '0000:02:00.4 Ethernet controller [0200]: Chelsio Communications Inc T62100-CR Unified Wire Ethernet Controller [1425:6408]\n'
      + '0000:03:00.0 Serial Attached SCSI controller [0107]: Broadcom / LSI SAS3008 PCI-Express Fusion-MPT SAS-3 [1000:0097] (rev 02)\n'
      + '0000:04:00.0 Non-Volatile memory controller [0108]: Samsung Electronics Co Ltd NVMe SSD Controller SM981/PM981/PM983 [144d:a808]\n');
    const j = JSON.parse(expectOk(run('machine', root, ['lspci', '--json']))) as Array<{ bdf: string; vendor_id: string; wedged: boolean; regions: Array<{ name: string; size: number }> }>;
    expect(j.map((d) => [d.bdf, d.vendor_id, d.wedged])).toEqual([['0000:02:00.4', '1425', false], ['0000:03:00.0', '1000', false], ['0000:04:00.0', '144d', false]]);
    expect(j[0].regions).toEqual([{ name: 'config', size: 256, bus_addr: '0x0' }, { name: 'bar0', size: 16384, bus_addr: '0xfc000000' }, { name: 'edc0', size: 4 << 20, bus_addr: '0x0' }]);
  });

  it('device BDF: its regions; --dump -o FILE: the image (0600), whose config space holds the ids lspci shows', () => {
    expect(expectOk(run('machine', root, ['device', '03:00.0']))).toMatch(/^0000:03:00\.0 Serial Attached SCSI controller .*\n\tconfig +256 at 0x0\n\tbar0 +1K at 0xfd400000\n\tioc_mem +64K at 0x0\n$/);
    const f = path.join(dir, 'hba.img');
    expect(expectOk(run('machine', root, ['device', '0000:03:00.0', '--dump', '-o', f]))).toMatch(/^.*hba\.img: \d+ bytes\n$/);
    expect(fs.statSync(f).mode & 0o777).toBe(0o600);
    const img = decodeDeviceImage(fs.readFileSync(f));
    const cfg = img.regions.get('config')!.bytes;
    expect([cfg.readUInt16LE(0), cfg.readUInt16LE(2), cfg.readUInt16LE(0xa)]).toEqual([0x1000, 0x0097, 0x0107]);
    // The IOC is operational after its driver's init at boot: MPI2_IOC_STATE_OPERATIONAL in the doorbell.
    expect(img.regions.get('bar0')!.bytes.readUInt32LE(0) >>> 28).toBe(2);
  });

  it('fails in one line: no such function (66), not an address (64), --dump without -o (64), -o over a machine file (64), --devices gpu (64)', () => {
    expectCleanFailure(run('machine', root, ['device', '05:00.0']), 'machine', EX_NOINPUT, 'no PCI device at 0000:05:00.0');
    expectCleanFailure(run('machine', root, ['device', 'zz']), 'machine', EX_USAGE, "'zz' is not a PCI address");
    expectCleanFailure(run('machine', root, ['device', '02:00.4', '--dump']), 'machine', EX_USAGE, '--dump needs -o FILE');
    expectCleanFailure(run('machine', root, ['device', '02:00.4', '--dump', '-o', path.join(root, 'lib', 'machine', 'state.json')]), 'machine', EX_USAGE, 'refusing to write over it');
    expectCleanFailure(run('machine', path.join(dir, 'x'), ['power-on', '--mem', '32M', '--devices', 'gpu']), 'machine', EX_USAGE, "--devices 'gpu'");
  });

  it('a device file damaged on disk: lspci fails in one line naming it (65), no stack', () => {
    const f = path.join(root, 'lib', 'machine', 'devices', '0000:04:00.0');
    const b = fs.readFileSync(f);
    b[40] ^= 0xff;
    fs.writeFileSync(f, b);
    expectCleanFailure(run('machine', root, ['lspci']), 'machine', EX_DATAERR, 'PCI device 0000:04:00.0', f);
  });
});
