import { describe, expect, it } from 'vitest';
import { illFormedPath } from '../../src/core/well-formed.js';

describe('illFormedPath', () => {
  it('names the first string, key or value, that is not well-formed Unicode', () => {
    expect(illFormedPath({ region: 'eu', labels: { zone: 'a' }, list: ['x', '😀'] }, 'body')).toBeUndefined();
    expect(illFormedPath({ labels: { zone: '\ud800' } }, 'body')).toBe('body.labels.zone');
    expect(illFormedPath({ load: { '\udfff': 1 } }, 'body')).toBe('body.load.\\udfff');
    expect(illFormedPath(['ok', ['\ud83d']], 'answer')).toBe('answer.1.0');
  });

  it('checks every depth: a deeply nested lone surrogate is found, without recursion', () => {
    let deep: unknown = '\ud800';
    for (let i = 0; i < 20_000; i++) deep = [deep];
    expect(illFormedPath({ x: deep }, 'body')).toMatch(/^body\.x(\.0)+$/);
  });
});
