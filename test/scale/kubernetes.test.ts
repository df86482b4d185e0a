// deploy/kubernetes: the manifests parse, every reference resolves (selectors, volumes, claims,
// Secret, ConfigMap, ports, probes), every variable is one of the daemon's and its value
// passes the daemon's own validation, and the node configuration points at the Service.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig, VARIABLES } from '@drp/server';
import { parseAllDocuments } from 'yaml';

const DIR = new URL('../../deploy/kubernetes/', import.meta.url).pathname;

// Just the parts of the Kubernetes objects this test reads.
interface Meta {
  name: string;
  labels?: Record<string, string>;
}
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: Meta;
  spec?: unknown;
  data?: Record<string, string>;
}
interface Probe {
  httpGet?: { path: string; port: string | number };
}
interface Container {
  name: string;
  image: string;
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  env?: { name: string; value?: string }[];
  ports?: { name?: string; containerPort: number }[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}
interface Volume {
  name: string;
  persistentVolumeClaim?: { claimName: string };
  secret?: { secretName: string };
  configMap?: { name: string };
  emptyDir?: object;
}
interface DeploymentSpec {
  replicas: number;
  selector: { matchLabels: Record<string, string> };
  template: {
    metadata: Meta;
    spec: { containers: Container[]; volumes: Volume[]; terminationGracePeriodSeconds?: number };
  };
}

function files(dir: string, ext: RegExp): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path, ext) : ext.test(name) ? [path] : [];
  });
}

const yamlFiles = files(DIR, /\.ya?ml$/);
const objects: (K8sObject & { file: string })[] = yamlFiles.flatMap((file) =>
  parseAllDocuments(readFileSync(file, 'utf8')).map((doc) => {
    assert.deepEqual(doc.errors, [], `${file} does not parse`);
    return { ...(doc.toJS() as K8sObject), file: relative(DIR, file) };
  }),
);
const one = <T>(kind: string): K8sObject & { spec: T } => {
  const found = objects.filter((o) => o.kind === kind);
  assert.equal(found.length, 1, `one ${kind}`);
  return found[0] as K8sObject & { spec: T };
};
const kustomization = one<never>('Kustomization') as unknown as { resources: string[]; namespace: string };
const deployment = one<DeploymentSpec>('Deployment');
const service = one<{
  clusterIP: string;
  selector: Record<string, string>;
  ports: { port: number; targetPort: string | number }[];
}>('Service');
const pvc = one<{ accessModes: string[] }>('PersistentVolumeClaim');
const pdb = one<{ selector: { matchLabels: Record<string, string> } }>('PodDisruptionBudget');
const configMap = one<never>('ConfigMap');
const pod = deployment.spec.template.spec;
const container = pod.containers[0]!;
const env: Record<string, string> = {
  ...configMap.data,
  ...Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value ?? ''])),
};
const matches = (selector: Record<string, string>, labels: Record<string, string> | undefined) =>
  Object.entries(selector).every(([k, v]) => labels?.[k] === v);

describe('deploy/kubernetes', () => {
  it('kustomization lists every manifest, each exists', () => {
    const listed = kustomization.resources.map((r) => join(DIR, r));
    for (const file of listed) assert.ok(yamlFiles.includes(file), `${file} is listed but missing`);
    const manifests = objects.filter((o) => o.kind !== 'Kustomization').map((o) => join(DIR, o.file));
    for (const file of manifests) assert.ok(listed.includes(file), `${file} is not in kustomization.yaml`);
    assert.ok(objects.some((o) => o.kind === 'Namespace' && o.metadata.name === kustomization.namespace));
  });

  it('selectors resolve: the Deployment selects its pods, the Service and the PDB select them', () => {
    const labels = deployment.spec.template.metadata.labels;
    assert.ok(matches(deployment.spec.selector.matchLabels, labels));
    assert.ok(matches(service.spec.selector, labels), 'Service selector');
    assert.ok(matches(pdb.spec.selector.matchLabels, labels), 'PDB selector');
    assert.ok(deployment.spec.replicas >= 2, 'replicas');
  });

  it('volumes resolve: the RWX claim holds CACHE_DIR, the Secret drp-ca holds the CA files', () => {
    const volumes = new Map(pod.volumes.map((v) => [v.name, v]));
    for (const mount of container.volumeMounts ?? [])
      assert.ok(volumes.has(mount.name), `volume ${mount.name}`);
    const mountOf = (path: string) =>
      (container.volumeMounts ?? []).find((m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`));
    const cache = volumes.get(mountOf(env.CACHE_DIR!)!.name)!;
    assert.equal(cache.persistentVolumeClaim?.claimName, pvc.metadata.name);
    assert.deepEqual(pvc.spec.accessModes, ['ReadWriteMany']);
    for (const file of [env.CA_CRT_FILE!, env.CA_KEY_FILE!]) {
      const mount = mountOf(file)!;
      assert.equal(volumes.get(mount.name)?.secret?.secretName, 'drp-ca', file);
      assert.equal(mount.readOnly, true);
    }
    // The Secret is made by hand (README.md says how); configMaps and other secrets must exist.
    const readme = readFileSync(join(DIR, 'README.md'), 'utf8');
    assert.match(readme, /create secret generic drp-ca/);
    for (const ref of container.envFrom ?? []) {
      if (ref.configMapRef) assert.equal(ref.configMapRef.name, configMap.metadata.name);
      assert.equal(ref.secretRef, undefined);
    }
  });

  it('ports and probes: the Service and both probes reach PORT, on /healthz', () => {
    const port = container.ports?.find((p) => p.name === 'proxy');
    assert.equal(port?.containerPort, Number(env.PORT));
    assert.equal(service.spec.ports[0]?.port, 3128);
    assert.ok([port.name, port.containerPort].includes(service.spec.ports[0]!.targetPort));
    for (const probe of [container.readinessProbe, container.livenessProbe]) {
      assert.equal(probe?.httpGet?.path, '/healthz');
      assert.ok([port.name, port.containerPort].includes(probe.httpGet.port));
    }
  });

  it('every variable is one of the daemon’s, and the daemon accepts its value', () => {
    for (const name of Object.keys(env)) assert.ok(name in VARIABLES, `${name} is not a drp-server variable`);
    // Files are checked by the daemon when it starts in the pod; everything else is checked now.
    const checkable = Object.fromEntries(Object.entries(env).filter(([name]) => !name.endsWith('_FILE')));
    const config = loadConfig({ env: checkable, inContainer: true });
    assert.equal(config.port, 3128);
    assert.ok(config.workers >= 1);
    // The pod's grace period covers the preStop pause and the drain.
    const graceSeconds = pod.terminationGracePeriodSeconds ?? 30;
    assert.ok(config.timeouts.shutdownMs / 1000 + 5 < graceSeconds, 'terminationGracePeriodSeconds');
    // WORKERS never exceeds the CPUs the pod may use.
    assert.ok(config.workers <= Number(container.resources?.limits?.cpu), 'WORKERS vs the CPU limit');
    assert.ok(container.resources?.requests?.cpu && container.resources.requests.memory);
  });

  it('node configuration points at the Service', () => {
    const proxy = `${service.spec.clusterIP}:${service.spec.ports[0]!.port}`;
    const nodeFiles = files(join(DIR, 'node'), /\.(conf|toml)$/);
    assert.ok(nodeFiles.length >= 3);
    for (const file of nodeFiles.filter((f) => !f.endsWith('containerd-config.toml'))) {
      assert.ok(
        readFileSync(file, 'utf8').includes(`http://${proxy}`),
        `${relative(DIR, file)} points at ${proxy}`,
      );
    }
  });
});
