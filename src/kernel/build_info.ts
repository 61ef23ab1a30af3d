/** The UTS version string of every simulated build (uname -v). */
export const KERNEL_BUILD_VERSION = '#1 SMP Mon Nov 2 12:00:00 UTC 2026';
