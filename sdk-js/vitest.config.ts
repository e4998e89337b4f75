import { defineConfig } from 'vitest/config';

export default defineConfig({
  define: { __VERSION__: '"test"' },
  test: { environment: 'happy-dom', include: ['test/**/*.test.ts'] },
});
