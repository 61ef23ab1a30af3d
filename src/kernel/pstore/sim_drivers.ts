import { PAGE_SIZE, PAGE_SIZE_N } from '../../machine/index.js';
import type { Kernel } from '../kernel.js';
import { BuddyAllocator } from '../mm/buddy.js';
import type { MemMap } from '../mm/mem_map.js';
import { Prng } from '../prng.js';
import { devcdRegister, type RegisterReader } from './devcoredump.js';

/**
 * Two simulated drivers that register device state with the
 * device-coredump frontend at init, standing in for the PCI device model a
 * later issue builds: a network card keeping a firmware log ring and a TX
 * descriptor ring in RAM, and a power-management IC whose driver keeps its
 * clock and regulator state in RAM. Each also has a register block, read
 * at the panic. They load only when the frontend is configured, so every
 * other boot stays byte-identical to what it was.
 */
export interface SimDriver {
  dumpName: string;
  /** Bus address of the register block (a BAR, or an I2C address). */
  regBase: bigint;
  regCount: number;
  /** Region name, offset in the driver's page, bytes. */
  buffers: ReadonlyArray<{ name: string; offset: number; size: number }>;
  fill(page: Buffer, rng: Prng): void;
  /** Register i's value at uptime `ns`. */
  register(i: number, ns: bigint): number;
}

const NIC_FW_LOG = 2048;
const NIC_TX_RING = 512;
const PMIC_CLOCKS = 1024;
const PMIC_REGULATORS = 256;

export const SIM_DRIVERS: readonly SimDriver[] = [
  {
    dumpName: 'simnic_0000:00:03.0',
    regBase: 0xfebc0000n,
    regCount: 16,
    buffers: [{ name: 'fw_log', offset: 0, size: NIC_FW_LOG }, { name: 'tx_ring', offset: NIC_FW_LOG, size: NIC_TX_RING }],
    fill(page, rng) {
      const lines = ['fw 3.14.2 boot ok', 'pcie link up x4 gen3', 'phy: autoneg complete', 'mac: link up 10000 Mbps full duplex',
        'rss: 8 queues', 'tx: ring 0 armed', 'rx: ring 0 armed', 'wol: disabled'];
      let text = '';
      for (let i = 0; text.length < NIC_FW_LOG - 64; i++) text += `[fw ${String(i * 137 + rng.below(97)).padStart(8, ' ')}] ${lines[i % lines.length]}\n`;
      page.write(text, 0, 'latin1');
      // struct tx_desc { u64 addr; u16 len; u8 cmd; u8 sta; u32 rsvd } x 32
      for (let d = 0; d < NIC_TX_RING / 16; d++) {
        const o = NIC_FW_LOG + d * 16;
        page.writeBigUInt64LE(0x100000000n + BigInt(rng.below(1 << 20)) * 64n, o);
        page.writeUInt16LE(64 + rng.below(1450), o + 8);
        page.writeUInt8(0x0b, o + 10);
        page.writeUInt8(d < 28 ? 0x01 : 0x00, o + 11);
      }
    },
    register(i, ns) {
      const ms = Number(ns / 1_000_000n) >>> 0;
      return [0x000c0241, 0x80080783, 0x00000000, 0x0000001f][i] ?? ((ms * (i + 3) * 2654435761) >>> 0);
    },
  },
  {
    dumpName: 'simpmic_i2c-0-002d',
    regBase: 0x2dn,
    regCount: 8,
    buffers: [{ name: 'clk_state', offset: 0, size: PMIC_CLOCKS }, { name: 'regulators', offset: PMIC_CLOCKS, size: PMIC_REGULATORS }],
    fill(page, rng) {
      // struct clk_state { char name[16]; u64 rate; u32 enable_count; u32 flags } x 32
      const clocks = ['xo', 'pll0', 'pll1', 'cpu', 'ddr', 'pcie_aux', 'usb_ref', 'i2c0', 'uart0', 'sdhc'];
      for (let c = 0; c < PMIC_CLOCKS / 32; c++) {
        const o = c * 32;
        page.write(`${clocks[c % clocks.length]}${c >= clocks.length ? `.${Math.floor(c / clocks.length)}` : ''}`, o, 15, 'latin1');
        page.writeBigUInt64LE(BigInt(19_200_000 * (1 + rng.below(100))), o + 16);
        page.writeUInt32LE(rng.below(4), o + 24);
        page.writeUInt32LE(rng.below(2), o + 28);
      }
      // struct regulator_state { char name[16]; u32 microvolts; u32 enabled; u32 load_ua; u32 mode } x 8
      const regs = ['vdd_cpu', 'vdd_ddr', 'vdd_io', 'vdd_pcie', 'ldo1', 'ldo2', 'ldo3', 'vbat'];
      regs.forEach((name, r) => {
        const o = PMIC_CLOCKS + r * 32;
        page.write(name, o, 15, 'latin1');
        page.writeUInt32LE(800_000 + rng.below(2_500_000), o + 16);
        page.writeUInt32LE(1, o + 20);
        page.writeUInt32LE(rng.below(500_000), o + 24);
        page.writeUInt32LE(2, o + 28);
      });
    },
    register(i, ns) {
      return [0x5a, 0x01, 0x3f, 0x80, 0x00, 0x12, (Number(ns / 1_000_000_000n) & 0xff), 0x07][i] ?? 0;
    },
  },
];

/** The register reader for the simulated devices: an unknown device reads all ones, as a dead PCI function does. */
export const simRegisterReader: RegisterReader = (kernel, dumpName, _addr, count) => {
  const drv = SIM_DRIVERS.find((d) => d.dumpName === dumpName);
  const ns = kernel.readU64('sim_clock_ns');
  return Uint32Array.from({ length: count }, (_, i) => (drv ? drv.register(i, ns) : 0xffffffff));
};

/**
 * The drivers' init: each takes a page for its state, fills it, and
 * registers its buffers and register block with the device-coredump
 * frontend. Returns the physical address of each driver's page. The
 * content follows the boot's seed, not its time, so a machine's RAM
 * depends on the time only where the kernel stores times.
 */
export function probeSimDrivers(kernel: Kernel, memmap: MemMap, seed: number): Map<string, bigint> {
  const buddy = new BuddyAllocator(kernel, memmap);
  const rng = new Prng((seed ^ 0xdecd) >>> 0);
  const out = new Map<string, bigint>();
  for (const drv of SIM_DRIVERS) {
    const pfn = buddy.alloc(0);
    if (pfn === null) break;
    const page = Buffer.alloc(PAGE_SIZE);
    drv.fill(page, rng);
    const base = pfn * PAGE_SIZE_N;
    kernel.ram.write(base, page);
    out.set(drv.dumpName, base);
    devcdRegister(kernel, {
      dumpName: drv.dumpName,
      regions: [
        ...drv.buffers.map((b) => ({ name: b.name, type: 'buffer' as const, addr: base + BigInt(b.offset), size: b.size })),
        { name: 'regs', type: 'registers' as const, addr: drv.regBase, size: drv.regCount * 4 },
      ],
    });
  }
  return out;
}
