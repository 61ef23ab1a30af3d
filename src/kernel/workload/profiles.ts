import { UsageError } from '../../codec/index.js';

/**
 * What a workload does with memory: the share of the free memory after boot
 * that ends up in each use, and the processes it runs. Shares not given
 * stay free; `stale` is memory used and freed again (free pages that hold
 * old data, as on any machine that has run for a while).
 */
export interface Profile {
  name: ProfileName;
  description: string;
  share: {
    cache: number;          // page cache: real file contents
    anon: number;           // process heaps
    database: number;       // a database's buffer pool (anonymous)
    incompressible: number; // encrypted or compressed buffers (anonymous)
    zero: number;           // zero-filled anonymous memory (calloc, untouched BSS)
    slab: number;           // kernel slab objects
    kernel: number;         // other kernel allocations (vmalloc'd buffers, page tables)
    stale: number;          // used, then freed with its data left behind
  };
  processes: string[];
}

export type ProfileName = 'idle' | 'fileserver' | 'database' | 'random';
export const PROFILE_NAMES: readonly ProfileName[] = ['idle', 'fileserver', 'database', 'random'];

export const PROFILES: Record<ProfileName, Profile> = {
  idle: {
    name: 'idle', description: 'a freshly booted server: little in use, mostly free memory',
    share: { cache: 0.12, anon: 0.05, database: 0, incompressible: 0.005, zero: 0.02, slab: 0.03, kernel: 0.01, stale: 0.15 },
    processes: ['systemd-journal', 'systemd-udevd', 'sshd', 'cron', 'agetty'],
  },
  fileserver: {
    name: 'fileserver', description: 'an NFS/Samba server: most memory is page cache',
    share: { cache: 0.62, anon: 0.06, database: 0, incompressible: 0.03, zero: 0.02, slab: 0.08, kernel: 0.02, stale: 0.1 },
    processes: ['systemd-journal', 'sshd', 'smbd', 'nfsd', 'nfsd', 'rpcbind', 'nginx'],
  },
  database: {
    name: 'database', description: 'a database server: a large buffer pool, some cache',
    share: { cache: 0.18, anon: 0.08, database: 0.5, incompressible: 0.04, zero: 0.03, slab: 0.05, kernel: 0.02, stale: 0.05 },
    processes: ['systemd-journal', 'sshd', 'postgres', 'postgres', 'postgres', 'postgres', 'pgbouncer'],
  },
  random: {
    name: 'random', description: 'mixed load with many incompressible buffers and little free memory',
    share: { cache: 0.25, anon: 0.15, database: 0.05, incompressible: 0.35, zero: 0.02, slab: 0.06, kernel: 0.04, stale: 0.05 },
    processes: ['systemd-journal', 'sshd', 'java', 'python3', 'openssl', 'rsync'],
  },
};

const ALIASES: Record<string, ProfileName> = { db: 'database', fs: 'fileserver', file: 'fileserver' };

export function profileByName(name: string): Profile {
  const key = (ALIASES[name] ?? name) as ProfileName;
  const p = PROFILES[key];
  if (!p) throw new UsageError(`unknown profile '${name}' (choose one of: ${PROFILE_NAMES.join(', ')}; 'db' means database)`);
  return p;
}
