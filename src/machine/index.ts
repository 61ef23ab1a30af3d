export * from './constants.js';
export * from './ram.js';
export * from './paging.js';
export * from './memory.js';
export * from './root.js';
export * from './state.js';
export * from './files.js';
export * from './e820.js';
