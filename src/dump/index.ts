export * from './elf/index.js';
export * from './live_vmcore.js';
