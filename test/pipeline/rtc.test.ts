/**
 * The RTC (lib/machine/rtc, decoded in the test from its layout) never
 * goes backwards, through every kind of restart one machine root can
 * take: power-on (fresh, over a running machine, after power-off), a run
 * of the workload, a panic's kexec soft boot, `kexec -e`, `machine reboot`
 * cold and warm, `machine reset`, kdump's capture boot, and a crash that
 * restarts cold through the firmware. After every command:
 *
 * - the RTC reads no earlier than before it;
 * - at the end of a command that ran the machine, the RTC reads exactly the
 *   running kernel's wall clock (boot_time + uptime from `machine status
 *   --json`, read from RAM): it ticks with the kernel;
 * - a command that restarted the machine booted a kernel whose boot time
 *   is later than the last instant of the kernel before it, and at least
 *   one second after the RTC read before the command.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, ok, run, type RunResult, type Tool } from '../helpers/lkcd.js';
import { nsOf, readRtcFacts, RTC_EPOCH, type RtcReading } from '../helpers/rtc.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-rtc-'));
beforeAll(() => ensureBuilt());
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const EXIT_DUMP_LOST = 6;
const CMDLINE = 'BOOT_IMAGE=/boot/vmlinuz root=/dev/vda1 ro console=ttyS0,115200 panic=5 crashkernel=24M';

interface Seen { rtc: RtcReading | null; boot: bigint | null; wall: bigint | null }

describe('the RTC across every kind of restart', () => {
  const root = path.join(tmp, 'm');

  /** The RTC, and the running kernel's boot time and wall clock (null when it is off). */
  function look(): Seen {
    const rtc = readRtcFacts(root);
    const r = run('machine', root, ['status', '--json']);
    if (r.status !== 0) return { rtc, boot: null, wall: null };
    const s = JSON.parse(r.stdout) as { boot_time: number; uptime_ns: number };
    const boot = BigInt(s.boot_time);
    return { rtc, boot, wall: boot * 1_000_000_000n + BigInt(s.uptime_ns) };
  }

  it('never goes backwards, follows the kernel, and every boot comes after the kernel before it', () => {
    const problems: string[] = [];
    let seen = look();
    expect(seen.rtc).toBeNull();
    const step = (what: string, tool: Tool, args: string[], opts: { restarts: boolean; status?: number; off?: boolean }): RunResult => {
      const r = run(tool, root, args);
      if (r.status !== (opts.status ?? 0) || r.signal) problems.push(`${what}: exit ${r.status} ${r.signal ?? ''} ${r.stderr.trim()}`);
      const now = look();
      const before = seen.rtc ? nsOf(seen.rtc) : RTC_EPOCH * 1_000_000_000n;
      if (!now.rtc) problems.push(`${what}: no RTC file`);
      else {
        if (nsOf(now.rtc) < before) problems.push(`${what}: the RTC went back from ${before} to ${nsOf(now.rtc)}`);
        if (now.wall !== null && nsOf(now.rtc) !== now.wall) problems.push(`${what}: the RTC reads ${nsOf(now.rtc)}, the kernel's clock ${now.wall}`);
      }
      if (opts.restarts) {
        if (now.boot === null) problems.push(`${what}: no kernel running after it`);
        else {
          if (seen.wall !== null && now.boot * 1_000_000_000n <= seen.wall) problems.push(`${what}: booted at ${now.boot}, not after the last instant ${seen.wall} of the kernel before`);
          if (now.boot * 1_000_000_000n < before + 1_000_000_000n) problems.push(`${what}: booted at ${now.boot}, less than a second after the RTC's ${before}`);
        }
      } else if (opts.off) {
        if (now.boot !== null) problems.push(`${what}: the machine still runs`);
      } else if (seen.boot !== null && now.boot !== seen.boot) {
        problems.push(`${what}: the boot time changed from ${seen.boot} to ${now.boot} without a restart`);
      }
      seen = now;
      return r;
    };

    step('power-on of a new root', 'machine', ['power-on', '--mem', '64M', '--profile', 'idle', '--seed', '4', '--cmdline', CMDLINE], { restarts: true });
    expect(seen.boot).toBe(RTC_EPOCH + 1n);
    const release = JSON.parse(ok(run('machine', root, ['status', '--json']))).release as string;
    const image = path.join(root, 'boot', `vmlinuz-${release}`);
    step('run --seconds 30', 'machine', ['run', '--seconds', '30'], { restarts: false });
    step('lkcd config (arm)', 'lkcd', ['config'], { restarts: false });
    step('panic: stage 1 and the kexec soft boot', 'machine', ['panic', 'rtc test'], { restarts: true });
    step('lkcd config (writeout)', 'lkcd', ['config'], { restarts: false });
    step('lkcd save', 'lkcd', ['save'], { restarts: false });
    step('kexec -l', 'kexec', ['-l', image, '--command-line=root=/dev/vda1 ro'], { restarts: false });
    step('kexec -e', 'kexec', ['-e'], { restarts: true });
    step('machine reboot (cold)', 'machine', ['reboot'], { restarts: true });
    step('machine reset', 'machine', ['reset'], { restarts: true });
    step('power-on over a running machine', 'machine', ['power-on', '--mem', '64M', '--profile', 'idle', '--seed', '4', '--cmdline', `${CMDLINE} reboot=warm`], { restarts: true });
    step('machine reboot (warm)', 'machine', ['reboot'], { restarts: true });
    step('kdumpctl start', 'kdumpctl', ['start'], { restarts: false });
    step('panic: kdump\'s capture boot', 'machine', ['panic', 'rtc kdump'], { restarts: true });
    step('machine reset from the capture kernel', 'machine', ['reset'], { restarts: true });
    step('power-off', 'machine', ['power-off'], { restarts: false, off: true });
    step('power-on after power-off', 'machine', ['power-on', '--mem', '64M', '--profile', 'idle', '--seed', '4', '--cmdline', CMDLINE], { restarts: true });
    step('kexec -u', 'kexec', ['-u'], { restarts: false });
    step('sysrq c with no kexec kernel: the firmware restarts cold', 'machine', ['sysrq', 'c'], { restarts: true, status: EXIT_DUMP_LOST });
    expect(problems).toEqual([]);
    // Every step moved the clock or kept it; over the whole run it went well past the epoch.
    expect(seen.rtc!.sec).toBeGreaterThan(RTC_EPOCH + 40n);
  });
});
