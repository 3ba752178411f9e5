/**
 * The layers of src/ (docs/architecture.md), top to bottom. A module imports its own folder and
 * the layers below its own, never one above or beside it; no module cycles at all. Checked by
 * `npm test` (dependency-cruiser).
 */
const LAYERS = [
  ['cli'],
  ['server'],
  ['qtest', 'vfio-user'],
  ['views', 'control', 'platform', 'driver-sim'],
  ['access'],
  ['machine'],
  ['translator'],
  ['mmr'],
  ['sriov'],
  ['virtio'],
  ['devices'],
  ['virtqueue'],
  ['dma'],
  ['pci'],
  ['base', 'spec'],
];

const folder = (names) => `^src/(${names.join('|')})/`;

const layerRules = LAYERS.flatMap((layer, i) =>
  layer.map((name) => {
    const above = LAYERS.slice(0, i).flat();
    const beside = layer.filter((other) => other !== name);
    return {
      name: `layer-${name}`,
      comment: `src/${name} may import only the layers below it (docs/architecture.md)`,
      severity: 'error',
      from: { path: folder([name]) },
      to: { path: folder([...above, ...beside]) },
    };
  }),
);

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: "no cycle of run-time imports (a type-only import back to a module's owner is allowed)",
      severity: 'error',
      from: {},
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
    {
      name: 'known-folders',
      comment: 'every folder of src/ has its place in the layers',
      severity: 'error',
      from: { path: '^src/[^/]+/', pathNot: folder(LAYERS.flat()) },
      to: {},
    },
    ...layerRules,
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    includeOnly: '^src/',
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.json'] },
  },
};
