// Copies non-TypeScript assets (the Redis Lua scripts) next to the compiled code.
import { cpSync } from 'node:fs';
cpSync('src/store/redis/lua', 'dist/store/redis/lua', { recursive: true });
