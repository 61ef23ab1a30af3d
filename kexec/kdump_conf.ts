/**
 * etc/kdump.conf and etc/sysconfig/kdump as kdump-utils reads them
 * (kdump.conf(5), gen-kdump-conf.sh, gen-kdump-sysconfig.sh for x86_64).
 * The dump target is always a local path inside the machine root; the
 * directives that name other targets or hooks are refused by name.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { ioError, UsageError } from '../src/codec/index.js';
import { writeFileAtomic, type MachineRoot } from '../src/machine/index.js';
import { parseAssignments, pathInRoot } from '../lkcd/sysconfig.js';

export type KdumpAction = 'reboot' | 'halt' | 'poweroff' | 'shell';

export interface KdumpConf {
  file: string;
  /** `path`: the directory under the machine root where dumps go (/var/crash by default). */
  path: string;
  /** The absolute directory on this host. */
  dir: string;
  /** `core_collector`: the command, split on white space as kdump.sh's unquoted $CORE_COLLECTOR is. */
  coreCollector: string[];
  failureAction: KdumpAction;
  finalAction: Exclude<KdumpAction, 'shell'>;
}

export interface KdumpSysconfig {
  file: string;
  KDUMP_COMMANDLINE: string;
  KDUMP_COMMANDLINE_REMOVE: string;
  KDUMP_COMMANDLINE_APPEND: string;
}

export const KDUMP_CONF = path.join('etc', 'kdump.conf');
export const KDUMP_SYSCONFIG = path.join('etc', 'sysconfig', 'kdump');

/** The x86_64 values gen-kdump-sysconfig.sh assembles (_common + the arch's, or _common + default). */
export const KDUMP_COMMANDLINE_REMOVE_X86_64 = 'hugepages hugepagesz slub_debug quiet log_buf_len swiotlb hugetlb_cma ignition.firstboot cma';
export const KDUMP_COMMANDLINE_APPEND_X86_64 = 'novmcoredd hugetlb_cma=0 kfence.sample_interval=0 initramfs_options=size=90% '
  + 'irqpoll nr_cpus=1 reset_devices cgroup_disable=memory mce=off numa=off udev.children-max=2 panic=10 acpi_no_memhotplug '
  + 'transparent_hugepage=never nokaslr hest_disable cma=0 pcie_ports=compat';

/** Whether this host's makedumpfile was built with LZO ("lzo\tenabled" in `makedumpfile -v`). */
export function makedumpfileHasLzo(): boolean {
  const r = spawnSync('makedumpfile', ['-v'], { encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 && /^lzo\s+enabled/m.test(`${r.stdout}${r.stderr}`);
}

/** The default core collector: kdump-utils' "-l", or "-c" where makedumpfile has no LZO. */
export function defaultCoreCollector(hasLzo: boolean): string {
  return `makedumpfile ${hasLzo ? '-l' : '-c'} --message-level 7 -d 31`;
}

export function defaultKdumpConf(hasLzo: boolean): string {
  return `# This file contains a series of commands to perform (in order) in the kdump
# kernel after a kernel crash (the subset of kdump.conf(5) lkcd-softboot runs).
#
# path <path>      where dumps go, inside the machine root: <path>/127.0.0.1-<date>/
# core_collector   the command that copies /proc/vmcore; kdumpctl save runs
#                  "<core_collector> /proc/vmcore <dir>/vmcore-incomplete"
#                  (the real makedumpfile of this host by default)
# failure_action   reboot | halt | poweroff | shell, when saving fails
# final_action     reboot | halt | poweroff, when saving succeeds
auto_reset_crashkernel yes
path /var/crash
core_collector ${defaultCoreCollector(hasLzo)}
#failure_action shell
#final_action reboot
`;
}

export function defaultKdumpSysconfig(): string {
  return `# Kernel Version string for the -kdump kernel, such as 5.4.0-lkcd
# If no version is specified, then the running kernel's version is used.
KDUMP_KERNELVER=""

# The kdump commandline is the command line that needs to be passed off to
# the kdump kernel. If unset, it takes /proc/cmdline.
KDUMP_COMMANDLINE=""

# This variable lets us remove arguments from the current kdump commandline
# as taken from either KDUMP_COMMANDLINE above, or from /proc/cmdline
KDUMP_COMMANDLINE_REMOVE="${KDUMP_COMMANDLINE_REMOVE_X86_64}"

# This variable lets us append arguments to the current kdump commandline
# after processed by KDUMP_COMMANDLINE_REMOVE
KDUMP_COMMANDLINE_APPEND="${KDUMP_COMMANDLINE_APPEND_X86_64}"
`;
}

function readOrCreate(file: string, fallback: () => string): string {
  if (!fs.existsSync(file)) {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
    writeFileAtomic(file, fallback(), 0o644);
  }
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw ioError('reading kdump configuration', e as NodeJS.ErrnoException);
  }
}

/** Directives that name dump targets kdump-utils supports and this simulator does not. */
const TARGETS = ['raw', 'nfs', 'ssh', 'sshkey', 'ext2', 'ext3', 'ext4', 'xfs', 'btrfs', 'minix', 'virtiofs'];
/** Directives that run hooks or change the initramfs: refused rather than silently ignored. */
const HOOKS = ['kdump_pre', 'kdump_post', 'kdump_emergency', 'extra_bins', 'extra_modules', 'fence_kdump_args', 'fence_kdump_nodes', 'dracut_args'];
/** Accepted and without effect here. */
const IGNORED = ['auto_reset_crashkernel', 'force_rebuild', 'force_no_rebuild'];

/** Reads etc/kdump.conf (written with the defaults on first use) and checks every line. */
export function loadKdumpConf(root: MachineRoot, opts: { createDefault?: boolean } = {}): KdumpConf {
  const file = path.join(root.dir, KDUMP_CONF);
  const text = opts.createDefault === false && !fs.existsSync(file) ? defaultKdumpConf(true) : readOrCreate(file, () => defaultKdumpConf(makedumpfileHasLzo()));
  const conf: Partial<KdumpConf> = { file };
  let pathValue = '/var/crash';
  let pathWhere = `${file}: path`;
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') return;
    const sp = line.search(/\s/);
    const key = sp < 0 ? line : line.slice(0, sp);
    const value = sp < 0 ? '' : line.slice(sp).trim();
    const where = `${file}:${i + 1}: ${key}`;
    if (TARGETS.includes(key)) throw new UsageError(`${where}: dump target '${key}' is not simulated (only a local path on the machine's root file system)`, { file });
    if (HOOKS.includes(key)) throw new UsageError(`${where} is not supported by this simulator`, { file });
    if (IGNORED.includes(key)) return;
    if (value === '') throw new UsageError(`${where} has no value`, { file });
    switch (key) {
      case 'path':
        pathValue = value;
        pathWhere = where;
        return;
      case 'core_collector': {
        const words = value.split(/\s+/);
        if (words[0] === 'makedumpfile' && words.includes('-F')) throw new UsageError(`${where}: makedumpfile -F (flattened) is only for raw and ssh targets`, { file });
        conf.coreCollector = words;
        return;
      }
      case 'failure_action':
      case 'default':
        if (value === 'dump_to_rootfs') throw new UsageError(`${where} dump_to_rootfs: the dump target already is the root file system; use reboot, halt, poweroff or shell`, { file });
        if (!['reboot', 'halt', 'poweroff', 'shell'].includes(value)) throw new UsageError(`${where} '${value}' is not one of reboot, halt, poweroff, shell`, { file });
        conf.failureAction = value as KdumpAction;
        return;
      case 'final_action':
        if (!['reboot', 'halt', 'poweroff'].includes(value)) throw new UsageError(`${where} '${value}' is not one of reboot, halt, poweroff`, { file });
        conf.finalAction = value as KdumpConf['finalAction'];
        return;
      default:
        throw new UsageError(`${where}: invalid kdump config option`, { file });
    }
  });
  if (!pathValue.startsWith('/')) throw new UsageError(`${pathWhere} '${pathValue}' is not an absolute path`, { file });
  return {
    file,
    path: pathValue,
    dir: pathInRoot(root.dir, pathValue, pathWhere),
    coreCollector: conf.coreCollector ?? defaultCoreCollector(true).split(' '),
    failureAction: conf.failureAction ?? 'reboot',
    finalAction: conf.finalAction ?? 'reboot',
  };
}

/** Reads etc/sysconfig/kdump (written with kdump-utils' x86_64 defaults on first use). */
export function loadKdumpSysconfig(root: MachineRoot, opts: { createDefault?: boolean } = {}): KdumpSysconfig {
  const file = path.join(root.dir, KDUMP_SYSCONFIG);
  const text = opts.createDefault === false && !fs.existsSync(file) ? defaultKdumpSysconfig() : readOrCreate(file, defaultKdumpSysconfig);
  const kv = parseAssignments(text, file);
  const get = (k: string, d: string): string => kv.get(k)?.value ?? d;
  return {
    file,
    KDUMP_COMMANDLINE: get('KDUMP_COMMANDLINE', ''),
    KDUMP_COMMANDLINE_REMOVE: get('KDUMP_COMMANDLINE_REMOVE', KDUMP_COMMANDLINE_REMOVE_X86_64),
    KDUMP_COMMANDLINE_APPEND: get('KDUMP_COMMANDLINE_APPEND', KDUMP_COMMANDLINE_APPEND_X86_64),
  };
}

/** Parameters prepare_cmdline() always removes (kdump-lib.sh). */
const ALWAYS_REMOVE = ['crashkernel', 'panic_on_warn', 'root', 'rd.lvm.lv', 'rd.luks.uuid', 'rd.dm.uuid', 'rd.md.uuid', 'fcoe',
  'netroot', 'rd.iscsi.initiator', 'iscsi_initiator'];

/** _cmdline_parse(): words as (opt, val); "foo=" (an empty value) is dropped. */
function cmdlineParse(text: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const word of text.split(/\s+/)) {
    if (word === '') continue;
    const eq = word.indexOf('=');
    if (eq < 0) { out.push([word, '']); continue; }
    const val = word.slice(eq + 1);
    if (val === '') continue;
    out.push([word.slice(0, eq), val]);
  }
  return out;
}

/**
 * prepare_cmdline() of kdump-lib.sh: the running kernel's command line
 * (or KDUMP_COMMANDLINE) without the removed parameters, then the
 * appended ones, disable_cpu_apicid= of the boot CPU, and
 * rd.systemd.gpt_auto=no; white space squeezed.
 */
export function prepareCmdline(procCmdline: string, sc: KdumpSysconfig, bootCpuApicid: number): string {
  const input = sc.KDUMP_COMMANDLINE !== '' ? sc.KDUMP_COMMANDLINE : procCmdline;
  const remove = new Set([...cmdlineParse(sc.KDUMP_COMMANDLINE_REMOVE).map(([o]) => o), ...ALWAYS_REMOVE]);
  const out: string[] = [];
  for (const [opt, val] of cmdlineParse(input)) {
    if (remove.has(opt)) continue;
    out.push(val !== '' ? `${opt}=${val}` : opt);
  }
  if (sc.KDUMP_COMMANDLINE_APPEND.trim() !== '') out.push(sc.KDUMP_COMMANDLINE_APPEND.trim());
  out.push(`disable_cpu_apicid=${bootCpuApicid}`);
  out.push('rd.systemd.gpt_auto=no');
  return out.join(' ').replace(/\s+/g, ' ').trim();
}
