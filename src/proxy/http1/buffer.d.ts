// Node's Buffer has latin1Slice/latin1Write (what toString('latin1')/write(..., 'latin1') call
// after their argument checks); @types/node does not declare them. The proxy's head parser uses
// them directly on its hot path.
declare global {
  interface Buffer {
    latin1Slice(start: number, end: number): string;
    latin1Write(string: string, offset: number, length?: number): number;
  }
}
export {};
