// The program version, reported in snapshots and by `bulwark version`.
export const VERSION = '0.2.0';
