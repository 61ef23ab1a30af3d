import { describe, expect, it } from 'vitest';
import { normalisePanicString, panicSignature, parseCallSite } from '../../../src/store/index.js';

describe('normalisePanicString', () => {
  it.each([
    ['sysrq triggered crash', 'sysrq triggered crash'],
    ['Kernel panic - not syncing: Fatal exception', 'Fatal exception'],
    ['Attempted to kill init! exitcode=0x0000000b', 'Attempted to kill init! exitcode='],
    ['BUG: unable to handle page fault for address: ffffc90000bad000', 'BUG: unable to handle page fault for address:'],
    ['kernel BUG at mm/slub.c:3901!', 'kernel BUG at mm/slub.c:!'],
    ['CPU: 3 PID: 4312 Comm: bash[4312] Tainted', 'CPU: PID: Comm: bash Tainted'],
    ['RIP: 0010:[<ffffffff81234567>] sysrq_handle_crash+0x16/0x20', 'RIP: : sysrq_handle_crash'],
    ['[   12.345678]   hung   task\tkworker/3:1', 'hung task kworker/:'],
    ['ext4 deadbeef error', 'ext4 deadbeef error'],
  ])('%j -> %j', (input, expected) => {
    expect(normalisePanicString(input)).toBe(expected);
  });
});

describe('parseCallSite', () => {
  it.each([
    ['sysrq_handle_crash+0x16/0x20', 'sysrq_handle_crash', 'sysrq_handle_crash+0x16'],
    ['sim_driver_oops+0x2a/0x60 [sim_driver]', 'sim_driver_oops [sim_driver]', 'sim_driver_oops+0x2a [sim_driver]'],
    ['[<ffffffff81000123>] panic+0x10F', 'panic', 'panic+0x10f'],
    ['panic', 'panic', 'panic'],
  ])('%j', (site, symbol, shown) => {
    expect(parseCallSite(site)).toEqual({ symbol, shown });
  });
});

describe('panicSignature', () => {
  it('keeps the offset in the text and out of the hash', () => {
    const a = panicSignature('sysrq triggered crash', 'sysrq_handle_crash+0x16/0x20');
    expect(a.text).toBe('Kernel panic - not syncing: sysrq triggered crash @ sysrq_handle_crash+0x16');
    expect(panicSignature('Kernel panic - not syncing: sysrq triggered crash', 'sysrq_handle_crash+0x18').signature)
      .toBe(a.signature);
    // sha256("sysrq triggered crash@sysrq_handle_crash"), first 16 hex digits.
    expect(a.signature).toBe('49f909d6ce156317');
  });
});
