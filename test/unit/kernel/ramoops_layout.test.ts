import { describe, expect, it } from 'vitest';
import {
  DEVCD_ZONE_SIG, inheritPersistentRamParams, KMSG_DUMP_OOPS, KMSG_DUMP_PANIC, kmsgDumpGetBuffer, kmsgHeader, kstrtoull,
  parseKernelParams, parseMemmap, persistent_ram_buffer, PRZ_FLAG_ZAP_OLD, PSTORE_TYPE_CONSOLE, PSTORE_TYPE_DEVCOREDUMP,
  PSTORE_TYPE_DMESG, PSTORE_TYPE_FTRACE, PSTORE_TYPE_PMSG, ramoops_context, ramoopsLayout, ramoopsParams, readKmsgHeader,
  rebootMode, zbufsizeDeflate, zoneBufferSize, pstore_file, devcd_region, devcd_device, devcd_registry,
} from '../../../src/kernel/pstore/index.js';
import { vmcoredd_header } from '../../../src/codec/index.js';
import { memparse } from '../../../src/kernel/crashkernel.js';
import { dataSize, zoneTable } from '../../helpers/ramoops_decoder.js';

const params = (cmd: string): ReturnType<typeof ramoopsParams> => ramoopsParams(parseKernelParams(cmd));

describe('ramoops module parameters on the command line', () => {
  it('defaults as the module does: record, console, ftrace and pmsg 4096, max_reason Oops, no ECC', () => {
    const { pdata, errors } = params('root=/dev/vda1 ramoops.mem_address=0x3000000 ramoops.mem_size=0x100000');
    expect(errors).toEqual([]);
    expect(pdata).toMatchObject({ mem_address: 0x3000000n, mem_size: 0x100000n, record_size: 4096n, console_size: 4096n, ftrace_size: 4096n, pmsg_size: 4096n, max_reason: KMSG_DUMP_OOPS, ecc_size: 0, devcd_size: 0n });
  });

  it('no mem_size: ramoops_register_dummy does nothing', () => {
    expect(params('ramoops.mem_address=0x3000000').pdata).toBeNull();
  });

  it('ecc=1 means 16 parity bytes; dump_oops=0 means panics only; max_reason wins over dump_oops', () => {
    expect(params('ramoops.mem_size=4096 ramoops.ecc=1').pdata!.ecc_size).toBe(16);
    expect(params('ramoops.mem_size=4096 ramoops.dump_oops=0').pdata!.max_reason).toBe(KMSG_DUMP_PANIC);
    expect(params('ramoops.mem_size=4096 ramoops.dump_oops=0 ramoops.max_reason=2').pdata!.max_reason).toBe(KMSG_DUMP_OOPS);
  });

  it('a value kstrtoul cannot read keeps its default and yields the kernel\'s line (no K/M suffixes on ulong parameters)', () => {
    const { pdata, errors } = params('ramoops.mem_size=0x8000 ramoops.record_size=16K');
    expect(pdata!.record_size).toBe(4096n);
    expect(errors).toEqual(["Booting kernel: `16K' invalid for parameter `ramoops.record_size'"]);
    expect(kstrtoull('0x10')).toBe(16n);
    expect(kstrtoull('010')).toBe(8n);
    expect(kstrtoull('1M')).toBeNull();
  });

  it('memmap=nn$ss reserves with memparse sizes; other forms are reported, not guessed', () => {
    expect(memparse('1088K')).toEqual({ value: 1088n * 1024n, end: 5 });
    const e = parseMemmap(parseKernelParams('memmap=1M$84M memmap=64K@0x1000 memmap=4K$0x2000,2M$1G'));
    expect(e.map((x) => (x.ok ? [x.range.start, x.range.end] : x.text))).toEqual([[84n << 20n, 85n << 20n], '64K@0x1000', [0x2000n, 0x3000n], [1n << 30n, (1n << 30n) + (2n << 20n)]]);
  });

  it('reboot= is cold unless a word starts with w', () => {
    expect(rebootMode(parseKernelParams('root=/dev/vda1'))).toBe('cold');
    expect(rebootMode(parseKernelParams('reboot=warm'))).toBe('warm');
    expect(rebootMode(parseKernelParams('reboot=w,acpi'))).toBe('warm');
    expect(rebootMode(parseKernelParams('reboot=warm reboot=cold'))).toBe('cold');
  });

  it('the kexec command line inherits ramoops.*, pstore.*, memmap= and reboot= it does not set itself', () => {
    const running = 'BOOT_IMAGE=/boot/x root=/dev/vda1 reboot=warm memmap=1M$84M ramoops.mem_address=0x5400000 ramoops.mem_size=0x100000 pstore.compress=none quiet';
    expect(inheritPersistentRamParams('root=/dev/vda1 ro crashdump=0xffff888000100000', running))
      .toBe('root=/dev/vda1 ro crashdump=0xffff888000100000 reboot=warm memmap=1M$84M ramoops.mem_address=0x5400000 ramoops.mem_size=0x100000 pstore.compress=none');
    expect(inheritPersistentRamParams('ramoops.mem_size=0x200000 reboot=cold', running)).toBe('ramoops.mem_size=0x200000 reboot=cold memmap=1M$84M ramoops.mem_address=0x5400000 pstore.compress=none');
  });
});

describe('ramoops_probe() zone layout', () => {
  it('a region that divides unevenly: 11 dmesg zones of 17128 bytes, then console, ftrace, pmsg, and the devcoredump zone after the region', () => {
    // 0x40000 - 0x10000 - 0x1000 - 0x1000 = 188416 for dmesg; / 16384 = 11 zones; 188416 / 11 = 17128 each.
    const l = ramoopsLayout(params('ramoops.mem_address=0x1800000 ramoops.mem_size=0x40000 ramoops.record_size=0x4000 ramoops.console_size=0x10000 ramoops.devcoredump_size=0x10000').pdata!);
    expect(l.ok).toBe(true);
    if (!l.ok) return;
    const base = 0x1800000n;
    const dmesg = l.zones.filter((z) => z.type === PSTORE_TYPE_DMESG);
    expect(dmesg).toHaveLength(11);
    expect(dmesg.map((z) => [z.paddr - base, z.size])).toEqual(Array.from({ length: 11 }, (_, i) => [BigInt(i * 17128), 17128]));
    expect(dmesg[3].label).toBe('ramoops:dmesg(3/10)');
    const one = (t: number) => l.zones.find((z) => z.type === t)!;
    expect([one(PSTORE_TYPE_CONSOLE).paddr - base, one(PSTORE_TYPE_CONSOLE).size, one(PSTORE_TYPE_CONSOLE).flags]).toEqual([188408n, 65536, PRZ_FLAG_ZAP_OLD]);
    expect([one(PSTORE_TYPE_FTRACE).paddr - base, one(PSTORE_TYPE_FTRACE).size]).toEqual([253944n, 4096]);
    expect([one(PSTORE_TYPE_PMSG).paddr - base, one(PSTORE_TYPE_PMSG).size]).toEqual([258040n, 4096]);
    expect([one(PSTORE_TYPE_DEVCOREDUMP).paddr - base, one(PSTORE_TYPE_DEVCOREDUMP).size, one(PSTORE_TYPE_DEVCOREDUMP).sig]).toEqual([0x40000n, 0x10000, DEVCD_ZONE_SIG]);
    expect(l.cxt.max_dump_cnt).toBe(11);
  });

  it('sizes are rounded down to powers of two, and the test decoder lays the zones out the same way', () => {
    const cmd = 'ramoops.mem_address=0x2000000 ramoops.mem_size=0x30000 ramoops.record_size=0x5000 ramoops.console_size=0x3000 ramoops.ftrace_size=0x1800 ramoops.pmsg_size=0 ramoops.devcoredump_size=0x2000';
    const l = ramoopsLayout(params(cmd).pdata!);
    if (!l.ok) throw new Error(l.errors.join('; '));
    expect([l.cxt.record_size, l.cxt.console_size, l.cxt.ftrace_size, l.cxt.pmsg_size]).toEqual([0x4000n, 0x2000n, 0x1000n, 0n]);
    const ours = l.zones.map((z) => [z.paddr, z.size]);
    const theirs = zoneTable({ mem_address: 0x2000000, mem_size: 0x30000, record_size: 0x5000, console_size: 0x3000, ftrace_size: 0x1800, pmsg_size: 0, devcoredump_size: 0x2000 }).map((z) => [BigInt(z.paddr), z.size]);
    expect(ours).toEqual(theirs);
  });

  it('refuses as ramoops_probe does: no room for dmesg, all sizes zero', () => {
    const a = ramoopsLayout(params('ramoops.mem_address=0x1000000 ramoops.mem_size=0x2000 ramoops.console_size=0x1000').pdata!);
    expect(a).toEqual({ ok: false, errors: [expect.stringMatching(/^ramoops ramoops: no room for dmesg mem region/)] });
    const b = ramoopsLayout(params('ramoops.mem_size=0x2000 ramoops.record_size=0 ramoops.console_size=0 ramoops.ftrace_size=0 ramoops.pmsg_size=0').pdata!);
    expect(b).toEqual({ ok: false, errors: ['ramoops: The memory size and the record/console size must be non-zero'] });
  });

  it('ECC takes (ceil((n - ecc) / (128 + ecc)) + 1) * ecc bytes of each zone\'s data for parity', () => {
    for (const [zone, ecc] of [[4096, 16], [17128, 16], [65536, 32], [4096, 0]] as const) {
      expect(zoneBufferSize(zone, ecc)?.bufferSize).toBe(dataSize(zone, ecc));
    }
    // 4096 - 12 = 4084; blocks = ceil(4068 / 144) = 29; parity = 30 * 16 = 480.
    expect(zoneBufferSize(4096, 16)).toEqual({ bufferSize: 3604, eccBlocks: 29 });
    expect(zoneBufferSize(64, 32)).toBeNull();
  });
});

describe('records and their structs', () => {
  it('persistent_ram_buffer is 12 bytes (u32 sig, atomic_t start, atomic_t size); our structs have fixed sizes', () => {
    expect(persistent_ram_buffer.size).toBe(12);
    expect(persistent_ram_buffer.offsetOf).toEqual({ sig: 0, start: 4, size: 8 });
    // include/uapi/linux/vmcore.h: u32 n_namesz, n_descsz, n_type; u8 name[8]; u8 dump_name[44]; sizeof 64.
    expect(vmcoredd_header.size).toBe(64);
    expect(vmcoredd_header.offsetOf).toEqual({ n_namesz: 0, n_descsz: 4, n_type: 8, name: 12, dump_name: 20 });
    expect(devcd_region.size).toBe(32);
    expect(devcd_device.size).toBe(44 + 4 + 8 * 32);
    expect(devcd_registry.size).toBeLessThanOrEqual(4096);
    expect(pstore_file.size).toBe(48);
    expect(ramoops_context.size % 8).toBe(0);
  });

  it('the dmesg header is "====sec.usec-C|D\\n", and the reader takes the old "====sec.usec\\n" form too', () => {
    expect(kmsgHeader(1795000123n, 4_500_000, true).toString()).toBe('====1795000123.004500-C\n');
    expect(readKmsgHeader(Buffer.from('====1795000123.004500-D\nPanic#1 Part1\n'))).toEqual({ length: 24, sec: 1795000123n, nsec: 4_500_000, compressed: false });
    expect(readKmsgHeader(Buffer.from('====12.5\nOops#1 Part1\n'))).toEqual({ length: 9, sec: 12n, nsec: 5000, compressed: false });
    expect(readKmsgHeader(Buffer.from('Panic#1 Part1\n'))).toBeNull();
  });

  it('kmsg_dump_get_buffer(syslog) keeps the newest lines whose text fits in size - 1 bytes', () => {
    const recs = [1, 2, 3].map((i) => ({ seq: BigInt(i), ts_nsec: BigInt(i) * 1_000_000_000n, level: 6, text: `line ${i}` }));
    const one = '<6>[    3.000000] line 3\n';
    expect(kmsgDumpGetBuffer(recs, one.length + 1)).toBe(one);
    expect(kmsgDumpGetBuffer(recs, one.length)).toBe('');
    expect(kmsgDumpGetBuffer(recs, 1000).split('\n')[0]).toBe('<6>[    1.000000] line 1');
  });

  it('zbufsize_deflate: 45% expected for a 4000..10000-byte buffer, 60% above', () => {
    expect(zbufsizeDeflate(4084)).toBe(Math.floor(408400 / 45));
    expect(zbufsizeDeflate(16372)).toBe(Math.floor(1637200 / 60));
  });
});
