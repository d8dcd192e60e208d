import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stopChild, track } from './children.js';
import { freePort, waitForPort } from './ports.js';

export const RTMP_MODULE = '/usr/lib/nginx/modules/ngx_rtmp_module.so';

/** Extra features of the nginx-rtmp origin (all off by default). */
export interface NginxRtmpOptions {
  /**
   * HLS: `application live` also writes HLS (1 s fragments, 4 s playlists) and the HTTP server
   * serves it at `/live/<stream>.m3u8` and `/live/<stream>-N.ts`.
   */
  hls?: boolean;
}

/** One nginx with libnginx-mod-rtmp: `application live { live on; }` and `rtmp_stat all` on /stat. */
export class NginxRtmp {
  private constructor(
    readonly dir: string,
    readonly rtmpPort: number,
    readonly httpPort: number,
    private readonly child: ChildProcess,
  ) {}

  /** `chunkSize`: nginx's outgoing chunk size (its default is 4096). */
  static async start(host = '127.0.0.1', chunkSize = 4096, options: NginxRtmpOptions = {}): Promise<NginxRtmp> {
    const dir = mkdtempSync(join(tmpdir(), 'sb-nginx-rtmp-'));
    const [rtmpPort, httpPort] = [await freePort(), await freePort()];
    const hlsApp = options.hls ? ` hls on; hls_path ${dir}/hls; hls_fragment 1s; hls_playlist_length 4s;` : '';
    const hlsHttp = options.hls
      ? `
    location /live {
      alias ${dir}/hls;
      types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
      add_header Cache-Control no-cache;
    }`
      : '';
    const conf = `load_module ${RTMP_MODULE};
daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 256; }
rtmp {
  server {
    listen ${host}:${rtmpPort};
    chunk_size ${chunkSize};
    application live { live on;${hlsApp} }
  }
}
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen ${host}:${httpPort};
    location /stat { rtmp_stat all; }${hlsHttp}
  }
}
`;
    writeFileSync(join(dir, 'nginx.conf'), conf);
    const child = spawn('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], { stdio: ['ignore', 'pipe', 'pipe'] });
    track(child);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout!.resume();
    try {
      await Promise.race([
        Promise.all([waitForPort(rtmpPort, host), waitForPort(httpPort, host)]),
        new Promise((_, reject) => child.once('exit', (code) => reject(new Error(`nginx exited with ${code}: ${stderr}`)))),
      ]);
    } catch (err) {
      await stopChild(child, 'SIGKILL');
      throw err;
    }
    return new NginxRtmp(dir, rtmpPort, httpPort, child);
  }

  get host(): string {
    return '127.0.0.1';
  }

  /** Names of the streams in application `live` with an active publisher. */
  async publishing(): Promise<string[]> {
    const xml = await (await fetch(`http://${this.host}:${this.httpPort}/stat`)).text();
    const out: string[] = [];
    for (const m of xml.matchAll(/<stream>\s*<name>([^<]*)<\/name>([\s\S]*?)<\/stream>/g)) {
      if (/<publishing\s*\/>/.test(m[2]!)) out.push(m[1]!);
    }
    return out;
  }

  errorLog(): string {
    try {
      return readFileSync(join(this.dir, 'error.log'), 'utf8');
    } catch {
      return '';
    }
  }

  async stop(): Promise<void> {
    await stopChild(this.child, 'SIGQUIT', 3000);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
