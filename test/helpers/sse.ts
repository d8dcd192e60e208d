import { Agent, fetch as undiciFetch } from 'undici';
import { expect } from 'vitest';

export type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
export interface SseEvent {
  id?: string;
  event: string;
  data: Json;
}

/**
 * A minimal EventSource over undici's fetch streaming body: parses frames, counts comments and
 * chunks. undici's own fetch, not Node 20's global one (aborting that one leaves the socket
 * open), on an Agent of its own, destroyed on close: a disconnect leaves no socket behind.
 */
export class SseClient {
  readonly events: SseEvent[] = [];
  comments = 0;
  chunks = 0;
  status = 0;
  private readonly abort = new AbortController();
  private readonly agent = new Agent({ connections: 1 });
  private waiters: (() => void)[] = [];
  private done: Promise<void> = Promise.resolve();

  static async open(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
    const client = new SseClient();
    const res = await undiciFetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: client.abort.signal, dispatcher: client.agent });
    client.status = res.status;
    if (res.status !== 200) {
      await res.body?.cancel();
      await client.agent.destroy();
      return client;
    }
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    client.done = client.read(res.body!);
    return client;
  }

  private async read(body: AsyncIterable<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of body) {
        this.chunks++;
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          this.parse(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
        for (const w of this.waiters.splice(0)) w();
      }
    } catch {
      /* aborted */
    }
  }

  private parse(block: string): void {
    const event: Partial<SseEvent> & { lines: string[] } = { event: 'message', lines: [] };
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) this.comments++;
      else if (line.startsWith('id: ')) event.id = line.slice(4);
      else if (line.startsWith('event: ')) event.event = line.slice(7);
      else if (line.startsWith('data: ')) event.lines.push(line.slice(6));
    }
    if (event.lines.length > 0) this.events.push({ ...(event.id ? { id: event.id } : {}), event: event.event!, data: JSON.parse(event.lines.join('\n')) as Json });
  }

  /** The first event (from index `from`) that matches. */
  async next(match: (e: SseEvent) => boolean, what: string, from = 0, timeoutMs = 10_000): Promise<SseEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.slice(from).find(match);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no ${what} event; got: ${this.events.map((e) => e.event).join(', ')}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 100);
      });
    }
  }

  get lastId(): string | undefined {
    return this.events.findLast((e) => e.id !== undefined)?.id;
  }

  async close(): Promise<void> {
    this.abort.abort();
    await this.done;
    await this.agent.destroy();
  }
}
