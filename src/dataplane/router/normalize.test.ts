/**
 * @module dataplane/router/normalize.test
 * The canonical-path rules: decoding, dot segments, slash policies, rejected input, splitting targets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalizePath, splitTarget, type SlashPolicy } from './normalize.js';

// [raw, merge, keep, reject]: the expected canonical path (null = 400) under each slash policy.
const cases: [string, string | null, string | null, string | null][] = [
  ['/', '/', '/', '/'],
  ['/users', '/users', '/users', '/users'],
  ['/a/', '/a/', '/a/', '/a/'],
  ['/a/b/c', '/a/b/c', '/a/b/c', '/a/b/c'],
  ["/a:b@c!$&'()*+,;=-._~", "/a:b@c!$&'()*+,;=-._~", "/a:b@c!$&'()*+,;=-._~", "/a:b@c!$&'()*+,;=-._~"],
  ['/a.b/..c/c..', '/a.b/..c/c..', '/a.b/..c/c..', '/a.b/..c/c..'],
  // dot segments
  ['/a/./b', '/a/b', '/a/b', '/a/b'],
  ['/a/../b', '/b', '/b', '/b'],
  ['/a/b/..', '/a/', '/a/', '/a/'],
  ['/a/b/.', '/a/b/', '/a/b/', '/a/b/'],
  ['/a/b/../', '/a/', '/a/', '/a/'],
  ['/.', '/', '/', '/'],
  ['/./', '/', '/', '/'],
  ['/a/..', '/', '/', '/'],
  ['/..', null, null, null],
  ['/../a', null, null, null],
  ['/a/../..', null, null, null],
  ['/a/../../b', null, null, null],
  ['/./..', null, null, null],
  // encoded dots are dot segments after decoding
  ['/a/%2e%2e/b', '/b', '/b', '/b'],
  ['/a/%2E%2E/b', '/b', '/b', '/b'],
  ['/a/.%2e/b', '/b', '/b', '/b'],
  ['/a/%2e/b', '/a/b', '/a/b', '/a/b'],
  ['/%2e%2e', null, null, null],
  ['/a/%2e%2e%2fb', '/a/..%2Fb', '/a/..%2Fb', '/a/..%2Fb'],
  // percent-decoding only of unreserved characters
  ['/%41%62', '/Ab', '/Ab', '/Ab'],
  ['/%7e%2D%5f%2e%30', '/~-_.0', '/~-_.0', '/~-_.0'],
  ['/a%2fb', '/a%2Fb', '/a%2Fb', '/a%2Fb'],
  ['/a%2Fb', '/a%2Fb', '/a%2Fb', '/a%2Fb'],
  ['/a%20b', '/a%20b', '/a%20b', '/a%20b'],
  ['/caf%c3%a9', '/caf%C3%A9', '/caf%C3%A9', '/caf%C3%A9'],
  ['/a%3bb', '/a%3Bb', '/a%3Bb', '/a%3Bb'],
  ['/%5c', '/%5C', '/%5C', '/%5C'],
  ['/%25', '/%25', '/%25', '/%25'],
  ['/%2541', '/%2541', '/%2541', '/%2541'],
  // raw characters RFC 3986 does not allow are encoded
  ['/a{b}', '/a%7Bb%7D', '/a%7Bb%7D', '/a%7Bb%7D'],
  ['/a"<>|^`[]', '/a%22%3C%3E%7C%5E%60%5B%5D', '/a%22%3C%3E%7C%5E%60%5B%5D', '/a%22%3C%3E%7C%5E%60%5B%5D'],
  // empty segments
  ['/a//b', '/a/b', '/a//b', null],
  ['//a', '/a', '//a', null],
  ['/a//', '/a/', '/a//', null],
  ['//', '/', '//', null],
  ['///a///b', '/a/b', '///a///b', null],
  ['//evil.example/x', '/evil.example/x', '//evil.example/x', null],
  ['/a//../b', '/b', '/a/b', null],
  // malformed and dangerous input
  ['', null, null, null],
  ['a/b', null, null, null],
  ['*', null, null, null],
  ['/a\\b', null, null, null],
  ['/a\\..\\b', null, null, null],
  ['/%zz', null, null, null],
  ['/%G1', null, null, null],
  ['/%1', null, null, null],
  ['/a%', null, null, null],
  ['/a%2', null, null, null],
  ['/%00', null, null, null],
  ['/a%00.json', null, null, null],
  ['/a b', null, null, null],
  ['/a\tb', null, null, null],
  ['/a\nb', null, null, null],
  ['/a\x00b', null, null, null],
  ['/a\x7fb', null, null, null],
  ['/café', null, null, null],
  ['/a\u2215b', null, null, null],
  ['/a#frag', null, null, null],
  ['/%41/..\\', null, null, null],
];

const policies: SlashPolicy[] = ['merge', 'keep', 'reject'];

test('normalizePath: table of variants under each slash policy', () => {
  for (const [raw, ...expected] of cases) {
    policies.forEach((policy, i) => {
      assert.equal(normalizePath(raw, policy, false), expected[i], `${JSON.stringify(raw)} with slashes=${policy}`);
    });
  }
});

test('normalizePath: the canonical form is a fixed point', () => {
  for (const [raw] of cases) {
    for (const policy of policies) {
      const once = normalizePath(raw, policy, false);
      if (once === null) continue;
      assert.equal(normalizePath(once, policy, false), once, `${JSON.stringify(raw)} -> ${once} with slashes=${policy}`);
    }
  }
});

test('normalizePath: a very long path with many segments', () => {
  const deep = '/a'.repeat(2000) + '/..'.repeat(2000);
  assert.equal(normalizePath(deep, 'merge'), '/');
  assert.equal(normalizePath(deep + '/..', 'merge'), null);
});

test('splitTarget: origin form', () => {
  assert.deepEqual(splitTarget('/a/b?x=1&y=2'), { path: '/a/b', query: 'x=1&y=2' });
  assert.deepEqual(splitTarget('/a/b'), { path: '/a/b', query: '' });
  assert.deepEqual(splitTarget('/a?'), { path: '/a', query: '' });
  assert.deepEqual(splitTarget('/a?b?c'), { path: '/a', query: 'b?c' });
  assert.deepEqual(splitTarget('/?q'), { path: '/', query: 'q' });
  assert.deepEqual(splitTarget('//h/p?q'), { path: '//h/p', query: 'q' });
});

test('splitTarget: absolute form', () => {
  assert.deepEqual(splitTarget('http://h/p?q'), { path: '/p', query: 'q' });
  assert.deepEqual(splitTarget('https://api.example.com:8443/a/b'), { path: '/a/b', query: '' });
  assert.deepEqual(splitTarget('HTTP://h/p'), { path: '/p', query: '' });
  assert.deepEqual(splitTarget('http://user@h/p?x=/y'), { path: '/p', query: 'x=/y' });
  assert.deepEqual(splitTarget('http://h'), { path: '/', query: '' });
  assert.deepEqual(splitTarget('http://h?q=1'), { path: '/', query: 'q=1' });
});

test('splitTarget: targets that are not paths give path ""', () => {
  assert.deepEqual(splitTarget('*'), { path: '', query: '' });
  assert.deepEqual(splitTarget('example.com:443'), { path: '', query: '' });
  assert.deepEqual(splitTarget(''), { path: '', query: '' });
  assert.deepEqual(splitTarget('a/b?c'), { path: '', query: '' });
  assert.deepEqual(splitTarget('://h/p'), { path: '', query: '' });
  assert.deepEqual(splitTarget('1http://h/p'), { path: '', query: '' });
});

test('strict mode (the default) refuses paths that backends read differently', () => {
  for (const raw of ['/admin;x', '/public/..;/admin', '/a;b/c', '/x/..%2Fadmin', '/a%2fb', '/public/..%5Cadmin', '/a%3Bb', '/a%3bb']) {
    assert.equal(normalizePath(raw, 'merge'), null, raw);
    assert.notEqual(normalizePath(raw, 'merge', false), null, `${raw} is kept when allowed`);
  }
  for (const raw of ['/a/b', '/a%20b', '/%41', '/a/./b', "/a:b@c!$&'()*+,=-._~"]) assert.notEqual(normalizePath(raw, 'merge'), null, raw);
});
