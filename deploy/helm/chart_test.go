package helm_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite deploy/kubernetes from the chart")

const (
	chartDir  = "pharos"
	release   = "pharos"
	namespace = "metrics"
)

// valuesCase is one way to install the chart.
type valuesCase struct {
	name string
	file string   // relative to this directory, "" for none
	set  []string // --set arguments
	// secrets are the Secrets the user creates beside the release (name
	// to files), which the values name.
	secrets map[string]map[string]string
}

var valuesCases = []valuesCase{
	{name: "default", file: "pharos/ci/default-values.yaml"},
	{name: "tutorial", file: "pharos/ci/tutorial-values.yaml"},
	{name: "zone-aware", file: "pharos/ci/zone-aware-values.yaml"},
	{name: "single", file: "pharos/ci/single-values.yaml"},
	{name: "single-ha", file: "pharos/ci/single-values.yaml", set: []string{"single.replicas=3"}},
	{name: "prometheus-yml", file: "testdata/prometheus-yml-values.yaml"},
	{name: "results-cache", file: "pharos/ci/results-cache-values.yaml"},
}

// addSecrets adds v's Secrets to m, as if they were in the cluster
// beside the release.
func (v valuesCase) addSecrets(m *manifests) {
	for name, files := range v.secrets {
		m.secrets[name] = &corev1.Secret{StringData: files}
	}
}

func (v valuesCase) args() []string {
	var args []string
	if v.file != "" {
		args = append(args, "-f", v.file)
	}
	for _, s := range v.set {
		args = append(args, "--set", s)
	}
	return args
}

// helmBinary finds helm or skips: the chart can only be checked with it.
func helmBinary(t *testing.T) string {
	t.Helper()
	if h := os.Getenv("HELM"); h != "" {
		return h
	}
	if m, _ := filepath.Glob("../../bin/tools/helm-*"); len(m) > 0 {
		sort.Strings(m)
		abs, err := filepath.Abs(m[len(m)-1])
		require.NoError(t, err)
		return abs
	}
	if h, err := exec.LookPath("helm"); err == nil {
		return h
	}
	t.Skip("helm is not installed: run `make helm` (installs it under bin/tools) or set $HELM; CI installs it")
	return ""
}

func runHelm(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(helmBinary(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

func renderChart(t *testing.T, v valuesCase) string {
	t.Helper()
	out, stderr, err := runHelm(t, append([]string{"template", release, chartDir, "--namespace", namespace}, v.args()...)...)
	require.NoError(t, err, "helm template %s: %s", v.name, stderr)
	return out
}

// object is one rendered Kubernetes object, decoded into its API type.
type object struct {
	kind, name string
	obj        any
}

// manifests holds a rendering, indexed for the invariant checks.
type manifests struct {
	all          []object
	configMaps   map[string]*corev1.ConfigMap
	secrets      map[string]*corev1.Secret
	services     map[string]*corev1.Service
	statefulSets map[string]*appsv1.StatefulSet
	deployments  map[string]*appsv1.Deployment
	daemonSets   map[string]*appsv1.DaemonSet
	pdbs         map[string]*policyv1.PodDisruptionBudget
	clusterRoles map[string]*rbacv1.ClusterRole
	bindings     map[string]*rbacv1.ClusterRoleBinding
	ingresses    map[string]*networkingv1.Ingress
	hpas         map[string]*autoscalingv2.HorizontalPodAutoscaler
	accounts     map[string]*corev1.ServiceAccount
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// decodeStrict decodes every document with the API type its apiVersion and
// kind name; a field the type does not have fails, as a strict apiserver
// (kubectl apply --validate=strict) would.
func decodeStrict(t *testing.T, rendered string) *manifests {
	t.Helper()
	m := &manifests{
		configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{},
		services: map[string]*corev1.Service{}, statefulSets: map[string]*appsv1.StatefulSet{},
		deployments: map[string]*appsv1.Deployment{}, daemonSets: map[string]*appsv1.DaemonSet{},
		pdbs: map[string]*policyv1.PodDisruptionBudget{}, clusterRoles: map[string]*rbacv1.ClusterRole{},
		bindings: map[string]*rbacv1.ClusterRoleBinding{}, ingresses: map[string]*networkingv1.Ingress{},
		hpas: map[string]*autoscalingv2.HorizontalPodAutoscaler{}, accounts: map[string]*corev1.ServiceAccount{},
	}
	seen := map[string]bool{}
	for _, doc := range docSep.Split(rendered, -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var tm metav1.TypeMeta
		require.NoError(t, yaml.Unmarshal([]byte(doc), &tm))
		newObj, ok := apiTypes[tm.APIVersion+"/"+tm.Kind]
		require.True(t, ok, "unexpected object %s %s: add its type to apiTypes\n%s", tm.APIVersion, tm.Kind, doc)
		obj := newObj()
		require.NoError(t, yaml.UnmarshalStrict([]byte(doc), obj), "strict decode of %s:\n%s", tm.Kind, doc)
		meta := obj.(metav1.Object)
		key := tm.Kind + "/" + meta.GetName()
		require.False(t, seen[key], "%s rendered twice", key)
		seen[key] = true
		require.Regexp(t, `^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`, meta.GetName(), key)
		m.all = append(m.all, object{kind: tm.Kind, name: meta.GetName(), obj: obj})
		switch o := obj.(type) {
		case *corev1.ConfigMap:
			m.configMaps[o.Name] = o
		case *corev1.Secret:
			m.secrets[o.Name] = o
		case *corev1.Service:
			m.services[o.Name] = o
		case *corev1.ServiceAccount:
			m.accounts[o.Name] = o
		case *appsv1.StatefulSet:
			m.statefulSets[o.Name] = o
		case *appsv1.Deployment:
			m.deployments[o.Name] = o
		case *appsv1.DaemonSet:
			m.daemonSets[o.Name] = o
		case *policyv1.PodDisruptionBudget:
			m.pdbs[o.Name] = o
		case *rbacv1.ClusterRole:
			m.clusterRoles[o.Name] = o
		case *rbacv1.ClusterRoleBinding:
			m.bindings[o.Name] = o
		case *networkingv1.Ingress:
			m.ingresses[o.Name] = o
		case *autoscalingv2.HorizontalPodAutoscaler:
			m.hpas[o.Name] = o
		}
	}
	return m
}

// apiTypes are the kinds the chart may render, by apiVersion/kind.
var apiTypes = map[string]func() any{
	"v1/ConfigMap":                             func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                                func() any { return &corev1.Secret{} },
	"v1/Service":                               func() any { return &corev1.Service{} },
	"v1/ServiceAccount":                        func() any { return &corev1.ServiceAccount{} },
	"apps/v1/StatefulSet":                      func() any { return &appsv1.StatefulSet{} },
	"apps/v1/Deployment":                       func() any { return &appsv1.Deployment{} },
	"apps/v1/DaemonSet":                        func() any { return &appsv1.DaemonSet{} },
	"policy/v1/PodDisruptionBudget":            func() any { return &policyv1.PodDisruptionBudget{} },
	"rbac.authorization.k8s.io/v1/ClusterRole": func() any { return &rbacv1.ClusterRole{} },
	"rbac.authorization.k8s.io/v1/ClusterRoleBinding": func() any { return &rbacv1.ClusterRoleBinding{} },
	"networking.k8s.io/v1/Ingress":                    func() any { return &networkingv1.Ingress{} },
	"autoscaling/v2/HorizontalPodAutoscaler":          func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// workload is a Pharos pod template with where it came from.
type workload struct {
	kind, name string
	replicas   int32
	selector   *metav1.LabelSelector
	pod        corev1.PodTemplateSpec
	sts        *appsv1.StatefulSet
}

func (m *manifests) workloads() []workload {
	var ws []workload
	for _, s := range m.statefulSets {
		ws = append(ws, workload{"StatefulSet", s.Name, *s.Spec.Replicas, s.Spec.Selector, s.Spec.Template, s})
	}
	for _, d := range m.deployments {
		var r int32 = -1 // autoscaled
		if d.Spec.Replicas != nil {
			r = *d.Spec.Replicas
		}
		ws = append(ws, workload{"Deployment", d.Name, r, d.Spec.Selector, d.Spec.Template, nil})
	}
	for _, d := range m.daemonSets {
		ws = append(ws, workload{"DaemonSet", d.Name, -1, d.Spec.Selector, d.Spec.Template, nil})
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].name < ws[j].name })
	return ws
}

func (m *manifests) pharosWorkloads() []workload {
	var ws []workload
	for _, w := range m.workloads() {
		if w.pod.Labels["app.kubernetes.io/name"] == "pharos" {
			ws = append(ws, w)
		}
	}
	return ws
}

func (w workload) component() string { return w.pod.Labels["app.kubernetes.io/component"] }

func selects(t *testing.T, sel *metav1.LabelSelector, l map[string]string) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	require.NoError(t, err)
	return !s.Empty() && s.Matches(labels.Set(l))
}

func pharosContainer(t *testing.T, w workload) corev1.Container {
	t.Helper()
	for _, c := range w.pod.Spec.Containers {
		if c.Name == "pharos" {
			return c
		}
	}
	require.Failf(t, "no pharos container", "%s %s", w.kind, w.name)
	return corev1.Container{}
}

func TestChartLint(t *testing.T) {
	for _, v := range valuesCases {
		t.Run(v.name, func(t *testing.T) {
			out, stderr, err := runHelm(t, append([]string{"lint", "--strict", chartDir, "--namespace", namespace}, v.args()...)...)
			require.NoError(t, err, "helm lint:\n%s%s", out, stderr)
			require.Contains(t, out, "0 chart(s) failed")
		})
	}
}

func TestChartObjectsAndInvariants(t *testing.T) {
	for _, v := range valuesCases {
		t.Run(v.name, func(t *testing.T) {
			m := decodeStrict(t, renderChart(t, v))
			single := strings.HasPrefix(v.name, "single")
			checkWorkloads(t, m)
			checkServices(t, m)
			checkRBAC(t, m)
			checkIngress(t, m)
			checkResultsCache(t, m)
			if single {
				checkSingle(t, m, v)
			} else {
				checkDistributed(t, m, v)
			}
			if v.name == "prometheus-yml" {
				cfg := pharosConfig(t, m)
				require.Contains(t, cfg, "job_name: prometheus", "serverFiles.prometheus.yml replaces scrape")
				require.NotContains(t, cfg, "job_name: kubernetes-pods")
				require.NotContains(t, cfg, "/etc/config/rules", "its rule_files are not carried over")
			}
			if v.name == "prometheus-yml" || v.name == "tutorial" {
				require.Contains(t, m.configMaps[release+"-rules"].Data, "alerts", "serverFiles.alerts is a rule file")
			}
		})
	}
}

// frontendConfig is the rendered query_frontend section.
type frontendConfig struct {
	QueryShards  int    `json:"query_sharding_total_shards"`
	CacheResults bool   `json:"cache_results"`
	Backend      string `json:"results_cache_backend"`
	Memcached    struct {
		Addresses   string `json:"addresses"`
		MaxItemSize int    `json:"max_item_size"`
	} `json:"results_cache_memcached"`
}

func renderedFrontend(t *testing.T, m *manifests) frontendConfig {
	t.Helper()
	var cfg struct {
		QueryFrontend frontendConfig `json:"query_frontend"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(pharosConfig(t, m)), &cfg))
	return cfg.QueryFrontend
}

// checkResultsCache: a memcached results cache names servers that exist.
// With no addresses in the values the chart runs memcached itself: its
// headless Service is what the frontends resolve, on the port memcached
// listens on, and memcached takes items as large as the frontends send.
func checkResultsCache(t *testing.T, m *manifests) {
	fe := renderedFrontend(t, m)
	sts, own := m.statefulSets[release+"-results-cache"]
	if fe.Backend != "memcached" {
		require.False(t, own, "memcached runs only for backend memcached")
		return
	}
	if !strings.HasPrefix(fe.Memcached.Addresses, "dns+"+release+"-results-cache.") {
		require.False(t, own, "servers named in the values: the chart runs none")
		return
	}
	require.True(t, own, "backend memcached without addresses: the chart's own memcached")
	require.Equal(t, "dns+"+release+"-results-cache."+namespace+".svc:11211", fe.Memcached.Addresses)
	svc := m.services[release+"-results-cache"]
	require.Equal(t, corev1.ClusterIPNone, svc.Spec.ClusterIP, "headless: dns+ resolves every server")
	require.Equal(t, int32(11211), svc.Spec.Ports[0].Port)
	c := sts.Spec.Template.Spec.Containers[0]
	i := slices.Index(c.Args, "-I")
	require.GreaterOrEqual(t, i, 0, "memcached's item size is set: %v", c.Args)
	kib, err := strconv.Atoi(strings.TrimSuffix(c.Args[i+1], "k"))
	require.NoError(t, err, c.Args[i+1])
	require.Greater(t, kib*1024, fe.Memcached.MaxItemSize, "memcached must take the largest value a frontend sends, key and header included")
	require.Zero(t, kib%512, "memcached refuses an -I that is not a multiple of its 512 KiB slab chunk")
	for _, w := range m.pharosWorkloads() {
		require.False(t, selects(t, sts.Spec.Selector, w.pod.Labels), "the memcached StatefulSet must not select Pharos pods (%s)", w.name)
	}
}

// checkWorkloads: every pod template is selected by its controller, probes
// /ready and /-/healthy, has resources, mounts only volumes that exist, and
// runs non-root with a read-only root file system.
func checkWorkloads(t *testing.T, m *manifests) {
	for _, w := range m.workloads() {
		require.True(t, selects(t, w.selector, w.pod.Labels), "%s %s: selector does not match its pod labels", w.kind, w.name)
		for _, c := range w.pod.Spec.Containers {
			require.NotNil(t, c.ReadinessProbe, "%s %s/%s: readiness probe", w.kind, w.name, c.Name)
			require.NotNil(t, c.LivenessProbe, "%s %s/%s: liveness probe", w.kind, w.name, c.Name)
			require.NotEmpty(t, c.Resources.Requests, "%s %s/%s: resource requests", w.kind, w.name, c.Name)
			require.NotNil(t, c.SecurityContext, "%s %s/%s: security context", w.kind, w.name, c.Name)
			require.False(t, *c.SecurityContext.AllowPrivilegeEscalation, "%s %s/%s", w.kind, w.name, c.Name)
			volumes := map[string]bool{}
			for _, vol := range w.pod.Spec.Volumes {
				volumes[vol.Name] = true
			}
			if w.sts != nil {
				for _, pvc := range w.sts.Spec.VolumeClaimTemplates {
					volumes[pvc.Name] = true
				}
			}
			for _, vm := range c.VolumeMounts {
				require.True(t, volumes[vm.Name], "%s %s/%s mounts volume %q that is neither a volume nor a claim template", w.kind, w.name, c.Name, vm.Name)
			}
			ports := map[string]bool{}
			for _, p := range c.Ports {
				ports[p.Name] = true
			}
			for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
				if p != nil && p.HTTPGet != nil && p.HTTPGet.Port.StrVal != "" {
					require.True(t, ports[p.HTTPGet.Port.StrVal], "%s %s/%s probes unknown port %q", w.kind, w.name, c.Name, p.HTTPGet.Port.StrVal)
				}
			}
		}
		for _, vol := range w.pod.Spec.Volumes {
			if vol.ConfigMap != nil {
				require.Contains(t, m.configMaps, vol.ConfigMap.Name, "%s %s: volume %s", w.kind, w.name, vol.Name)
			}
			if vol.Secret != nil {
				require.Contains(t, m.secrets, vol.Secret.SecretName, "%s %s: volume %s", w.kind, w.name, vol.Name)
			}
		}
	}
	for _, w := range m.pharosWorkloads() {
		c := pharosContainer(t, w)
		require.Equal(t, "/ready", c.ReadinessProbe.HTTPGet.Path, "%s %s: readiness on /ready", w.kind, w.name)
		require.Equal(t, "http", c.ReadinessProbe.HTTPGet.Port.StrVal, "%s %s", w.kind, w.name)
		require.Equal(t, "/-/healthy", c.LivenessProbe.HTTPGet.Path, "%s %s", w.kind, w.name)
		require.True(t, *c.SecurityContext.ReadOnlyRootFilesystem, "%s %s", w.kind, w.name)
		require.True(t, *w.pod.Spec.SecurityContext.RunAsNonRoot, "%s %s", w.kind, w.name)
		require.Contains(t, c.Args, "-config.expand-env", "%s %s", w.kind, w.name)
		var env []string
		for _, e := range c.Env {
			env = append(env, e.Name)
			if e.Name == "POD_NAME" {
				require.Equal(t, "metadata.name", e.ValueFrom.FieldRef.FieldPath, "POD_NAME comes from the downward API")
			}
		}
		require.Subset(t, env, []string{"POD_NAME", "POD_IP"}, "%s %s", w.kind, w.name)
		require.Contains(t, m.accounts, w.pod.Spec.ServiceAccountName, "%s %s: service account", w.kind, w.name)
	}
}

// checkServices: every Service selects pods and targets ports they have; the
// gossip Service is headless, publishes not-ready pods and reaches every
// Pharos pod.
func checkServices(t *testing.T, m *manifests) {
	ws := m.workloads()
	for _, s := range m.services {
		var matched []workload
		for _, w := range ws {
			if selects(t, &metav1.LabelSelector{MatchLabels: s.Spec.Selector}, w.pod.Labels) {
				matched = append(matched, w)
			}
		}
		require.NotEmpty(t, matched, "service %s selects no pods", s.Name)
		for _, p := range s.Spec.Ports {
			if p.TargetPort.StrVal == "" {
				continue
			}
			for _, w := range matched {
				found := false
				for _, c := range w.pod.Spec.Containers {
					for _, cp := range c.Ports {
						found = found || (cp.Name == p.TargetPort.StrVal && cp.Protocol == protocolOrTCP(p.Protocol))
					}
				}
				require.True(t, found, "service %s port %s: %s %s has no %s port %q", s.Name, p.Name, w.kind, w.name, protocolOrTCP(p.Protocol), p.TargetPort.StrVal)
			}
		}
	}
	for _, w := range m.statefulSets {
		svc, ok := m.services[w.Spec.ServiceName]
		require.True(t, ok, "statefulset %s: serviceName %q not rendered", w.Name, w.Spec.ServiceName)
		require.Equal(t, corev1.ClusterIPNone, svc.Spec.ClusterIP, "statefulset %s: governing service must be headless", w.Name)
	}
}

func protocolOrTCP(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

func checkGossip(t *testing.T, m *manifests) {
	g, ok := m.services[release+"-gossip"]
	require.True(t, ok, "gossip service")
	require.Equal(t, corev1.ClusterIPNone, g.Spec.ClusterIP, "gossip service is headless")
	require.True(t, g.Spec.PublishNotReadyAddresses, "gossip service publishes pods before they are ready")
	var protos []corev1.Protocol
	for _, p := range g.Spec.Ports {
		require.EqualValues(t, 7946, p.Port)
		protos = append(protos, protocolOrTCP(p.Protocol))
	}
	require.ElementsMatch(t, []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP}, protos, "memberlist uses TCP and UDP")
	for _, w := range m.pharosWorkloads() {
		require.True(t, selects(t, &metav1.LabelSelector{MatchLabels: g.Spec.Selector}, w.pod.Labels), "gossip service misses %s %s", w.kind, w.name)
	}
}

// checkRBAC: the pods' ServiceAccount may get, list and watch everything
// kubernetes_sd_configs discovers.
func checkRBAC(t *testing.T, m *manifests) {
	var sa string
	for _, w := range m.pharosWorkloads() {
		sa = w.pod.Spec.ServiceAccountName
	}
	var roles []*rbacv1.ClusterRole
	for _, b := range m.bindings {
		for _, s := range b.Subjects {
			if s.Kind == "ServiceAccount" && s.Name == sa && s.Namespace == namespace {
				require.Contains(t, m.clusterRoles, b.RoleRef.Name)
				roles = append(roles, m.clusterRoles[b.RoleRef.Name])
			}
		}
	}
	require.NotEmpty(t, roles, "no ClusterRole bound to %s", sa)
	allows := func(group, resource, verb string) bool {
		for _, r := range roles {
			for _, rule := range r.Rules {
				if slices.Contains(rule.APIGroups, group) && slices.Contains(rule.Resources, resource) && slices.Contains(rule.Verbs, verb) {
					return true
				}
			}
		}
		return false
	}
	for _, gr := range []struct{ group, resource string }{
		{"", "nodes"}, {"", "services"}, {"", "endpoints"}, {"", "pods"},
		{"discovery.k8s.io", "endpointslices"}, {"networking.k8s.io", "ingresses"},
	} {
		for _, verb := range []string{"get", "list", "watch"} {
			require.True(t, allows(gr.group, gr.resource, verb), "service account %s may not %s %s.%s", sa, verb, gr.resource, gr.group)
		}
	}
}

func checkIngress(t *testing.T, m *manifests) {
	for _, ing := range m.ingresses {
		for _, r := range ing.Spec.Rules {
			for _, p := range r.HTTP.Paths {
				svc, ok := m.services[p.Backend.Service.Name]
				require.True(t, ok, "ingress %s: backend %s not rendered", ing.Name, p.Backend.Service.Name)
				found := false
				for _, sp := range svc.Spec.Ports {
					found = found || sp.Name == p.Backend.Service.Port.Name
				}
				require.True(t, found, "ingress %s: service %s has no port %q", ing.Name, svc.Name, p.Backend.Service.Port.Name)
			}
		}
	}
}

func checkDistributed(t *testing.T, m *manifests, v valuesCase) {
	checkGossip(t, m)
	byComponent := map[string][]workload{}
	for _, w := range m.pharosWorkloads() {
		byComponent[w.component()] = append(byComponent[w.component()], w)
	}
	for _, c := range []string{"ingester", "distributor", "querier", "scraper", "ruler", "notifier"} {
		require.NotEmpty(t, byComponent[c], "no %s workload", c)
	}

	ingesters := byComponent["ingester"]
	var total int32
	zones := map[string]bool{}
	for _, w := range ingesters {
		require.Equal(t, "StatefulSet", w.kind)
		total += w.replicas
		require.Equal(t, appsv1.OrderedReadyPodManagement, w.sts.Spec.PodManagementPolicy, "%s: one ingester at a time", w.name)
		require.Equal(t, appsv1.RollingUpdateStatefulSetStrategyType, w.sts.Spec.UpdateStrategy.Type)
		requireDataClaim(t, w)
		require.NotEmpty(t, w.pod.Spec.TopologySpreadConstraints, "%s: spread", w.name)
		c := pharosContainer(t, w)
		require.Contains(t, c.Args, "-target=ingester")
		require.NotNil(t, c.StartupProbe, "%s: WAL replay needs a startup probe", w.name)
		for _, a := range c.Args {
			if z, ok := strings.CutPrefix(a, "-ring.zone="); ok {
				zones[z] = true
				require.Equal(t, z, w.pod.Labels["pharos-tsdb.io/zone"])
				require.NotEmpty(t, w.pod.Spec.NodeSelector, "%s: pinned to its zone", w.name)
			}
		}
	}
	if v.name == "zone-aware" {
		require.Len(t, ingesters, 3, "one StatefulSet per zone")
		require.Len(t, zones, 3)
		require.EqualValues(t, 6, total)
	} else {
		require.Len(t, ingesters, 1)
		require.Empty(t, zones)
		var keys []string
		for _, c := range ingesters[0].pod.Spec.TopologySpreadConstraints {
			keys = append(keys, c.TopologyKey)
		}
		require.Contains(t, keys, "topology.kubernetes.io/zone")
	}

	// Exactly one budget covers the ingesters, across zones, and it lets one go.
	var ingPDBs []*policyv1.PodDisruptionBudget
	for _, p := range m.pdbs {
		if selects(t, p.Spec.Selector, ingesters[0].pod.Labels) {
			ingPDBs = append(ingPDBs, p)
		}
	}
	require.Len(t, ingPDBs, 1, "one PodDisruptionBudget over the ingesters")
	require.NotNil(t, ingPDBs[0].Spec.MaxUnavailable)
	require.Equal(t, 1, ingPDBs[0].Spec.MaxUnavailable.IntValue())
	for _, w := range ingesters {
		require.True(t, selects(t, ingPDBs[0].Spec.Selector, w.pod.Labels), "budget misses %s", w.name)
	}

	for _, c := range []string{"ruler", "notifier"} {
		ws := byComponent[c]
		require.Len(t, ws, 1)
		requireDataClaim(t, ws[0])
		require.GreaterOrEqual(t, ws[0].replicas, int32(3), "%s: a quorum of three", c)
		svc := m.services[ws[0].sts.Spec.ServiceName]
		require.True(t, svc.Spec.PublishNotReadyAddresses, "%s peers find each other before they are ready", c)
	}
	for _, c := range []string{"distributor", "querier"} {
		require.Equal(t, "Deployment", byComponent[c][0].kind, c)
	}

	cfg := pharosConfig(t, m)
	ruler := byComponent["ruler"][0]
	require.Contains(t, cfg, `raft_advertise: "${POD_NAME}.`+ruler.sts.Spec.ServiceName+"."+namespace+`.svc:9096"`)
	for i := range int(ruler.replicas) {
		require.Contains(t, cfg, fmt.Sprintf("- %s-%d.%s.%s.svc:9096", ruler.name, i, ruler.sts.Spec.ServiceName, namespace))
	}
	notifier := byComponent["notifier"][0]
	for i := range int(notifier.replicas) {
		require.Contains(t, cfg, fmt.Sprintf("- %s-%d.%s.%s.svc:9094", notifier.name, i, notifier.sts.Spec.ServiceName, namespace))
	}
	require.Contains(t, cfg, "- dns+"+release+"-gossip."+namespace+".svc:7946")
}

func checkSingle(t *testing.T, m *manifests, v valuesCase) {
	ws := m.pharosWorkloads()
	require.Len(t, ws, 1, "mode single renders one Pharos workload")
	w := ws[0]
	require.Equal(t, "StatefulSet", w.kind)
	require.Contains(t, pharosContainer(t, w).Args, "-target=all")
	requireDataClaim(t, w)
	cfg := pharosConfig(t, m)
	if w.replicas > 1 {
		checkGossip(t, m)
		require.Contains(t, cfg, fmt.Sprintf("replication_factor: %d", min(3, w.replicas)))
		require.Contains(t, cfg, fmt.Sprintf("- %s-%d.%s.%s.svc:9096", w.name, w.replicas-1, w.sts.Spec.ServiceName, namespace))
		require.Len(t, m.pdbs, 1)
	} else {
		require.NotContains(t, m.services, release+"-gossip", "a lone all-in-one pod has no peers")
		require.Contains(t, cfg, "replication_factor: 1")
		require.NotContains(t, cfg, "peers:")
	}
}

func requireDataClaim(t *testing.T, w workload) {
	t.Helper()
	require.Len(t, w.sts.Spec.VolumeClaimTemplates, 1, "%s: a PVC per pod", w.name)
	pvc := w.sts.Spec.VolumeClaimTemplates[0]
	require.Equal(t, "data", pvc.Name)
	require.False(t, pvc.Spec.Resources.Requests.Storage().IsZero(), "%s: storage request", w.name)
	mounted := false
	for _, vm := range pharosContainer(t, w).VolumeMounts {
		mounted = mounted || (vm.Name == "data" && vm.MountPath == "/data")
	}
	require.True(t, mounted, "%s: data mounted at /data", w.name)
}

func pharosConfig(t *testing.T, m *manifests) string {
	t.Helper()
	cm, ok := m.configMaps[release+"-config"]
	require.True(t, ok)
	return cm.Data["pharos.yaml"]
}

// TestChartRejectsWrongValues: values that cannot work fail at helm template,
// with a message that names the values at fault.
func TestChartRejectsWrongValues(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"replication factor above ingesters", []string{"--set", "ingester.replicas=2"},
			"ring.replicationFactor (3) must not be greater than ingester.replicas (2)"},
		{"replication factor above single replicas", []string{"--set", "mode=single", "--set", "ring.replicationFactor=3"},
			"ring.replicationFactor (3) must not be greater than single.replicas (1)"},
		{"replication factor above zones", []string{"-f", "testdata/two-zones-values.yaml"},
			"must not be greater than the number of ingester.zoneAwareReplication.zones (2)"},
		{"ingesters uneven over zones", []string{"-f", "testdata/two-zones-values.yaml", "--set", "ring.replicationFactor=2", "--set", "ingester.replicas=3"},
			"ingester.replicas (3) must divide evenly over the 2 ingester.zoneAwareReplication.zones"},
		{"slack receiver without api_url", []string{"-f", "testdata/slack-without-api-url-values.yaml"},
			`receivers[0] ("slack") slack_configs[0]: api_url is required`},
		{"unknown mode", []string{"--set", "mode=cluster"}, "at '/mode': value must be one of 'distributed', 'single'"},
		{"misspelt top-level key", []string{"--set", "ingesters.replicas=6"}, "additional properties 'ingesters' not allowed"},
		{"zero rulers", []string{"--set", "ruler.replicas=0"}, "/ruler/replicas"},
		{"unknown results cache backend", []string{"--set", "queryFrontend.resultsCache.backend=redis"}, "at '/queryFrontend/resultsCache/backend': value must be one of 'inmemory', 'memcached'"},
		{"memcached address without port", []string{"--set", "queryFrontend.resultsCache.memcached.addresses={memcached.cache.svc}"}, "/queryFrontend/resultsCache/memcached/addresses/0"},
		{"split interval not a duration", []string{"--set", "queryFrontend.splitQueriesByInterval=1d"}, "/queryFrontend/splitQueriesByInterval"},
		{"memcached item limit above half its memory", []string{"--set", "queryFrontend.resultsCache.backend=memcached", "--set", "queryFrontend.resultsCache.memcached.server.memoryMiB=64", "--set", "queryFrontend.resultsCache.memcached.maxItemSize=33554432"},
			"queryFrontend.resultsCache.memcached.maxItemSize (33554432) needs an item limit of 33280 KiB, more than half of queryFrontend.resultsCache.memcached.server.memoryMiB (64)"},
		{"replication factor zero", []string{"--set", "ring.replicationFactor=0"}, "at '/ring/replicationFactor': minimum: got 0, want 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, err := runHelm(t, append([]string{"template", release, chartDir, "--namespace", namespace}, tc.args...)...)
			require.Error(t, err, "helm template accepted wrong values")
			require.Contains(t, stderr, tc.wantErr)
		})
	}
}

// TestManifests keeps deploy/kubernetes equal to the chart's output for
// users without Helm; -update rewrites the files.
func TestManifests(t *testing.T) {
	for _, tc := range []struct {
		file string
		v    valuesCase
	}{
		{"pharos.yaml", valuesCase{name: "default"}},
		{"pharos-single.yaml", valuesCase{name: "single", set: []string{"mode=single"}}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("..", "kubernetes", tc.file)
			header := "# Generated from deploy/helm/pharos by `make manifests` (helm template " + release +
				" --namespace " + namespace + strings.Join(append([]string{""}, tc.v.args()...), " ") + "). Do not edit.\n"
			want := header + renderChart(t, tc.v)
			if *update {
				require.NoError(t, os.WriteFile(path, []byte(want), 0o644))
			}
			got, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, want, string(got), "%s is stale: run make manifests", path)
		})
	}
}

// TestChartVariants renders less common values: every object must still
// decode strictly, and pods, volumes and Services must still fit together.
func TestChartVariants(t *testing.T) {
	for _, v := range []valuesCase{
		{name: "no persistence", set: []string{"persistence.enabled=false"}},
		{name: "existing secret and service account", set: []string{"alertmanagerExistingSecret=my-am", "serviceAccount.create=false", "serviceAccount.name=pharos-sd"}},
		{name: "cluster domain and autoscaling", set: []string{"clusterDomain=cluster.local", "distributor.autoscaling.enabled=true", "querier.autoscaling.enabled=true"}},
		{name: "single without persistence", set: []string{"mode=single", "single.persistence.enabled=false"}},
		{name: "tls and gossip key", set: []string{"security.tls.secretName=" + tlsSecret, "security.gossipKey.secretName=" + gossipSecret}},
		{name: "memcached servers named", set: []string{"queryFrontend.resultsCache.backend=memcached", "queryFrontend.resultsCache.memcached.addresses={dns+memcached.cache.svc:11211,10.1.2.3:11211}"}},
		{name: "single with the chart's memcached", set: []string{"mode=single", "queryFrontend.resultsCache.backend=memcached"}},
	} {
		t.Run(v.name, func(t *testing.T) {
			m := decodeStrict(t, renderChart(t, v))
			for _, w := range m.pharosWorkloads() {
				volumes := map[string]bool{}
				for _, vol := range w.pod.Spec.Volumes {
					volumes[vol.Name] = true
					if vol.Secret != nil {
						require.Equal(t, v.name == "existing secret and service account", vol.Secret.SecretName == "my-am", "%s: secret %s", w.name, vol.Secret.SecretName)
					}
				}
				if w.sts != nil {
					for _, pvc := range w.sts.Spec.VolumeClaimTemplates {
						require.False(t, volumes[pvc.Name], "%s: %s is both a volume and a claim", w.name, pvc.Name)
						volumes[pvc.Name] = true
					}
				}
				for _, vm := range pharosContainer(t, w).VolumeMounts {
					require.True(t, volumes[vm.Name], "%s mounts %s, which is not there", w.name, vm.Name)
				}
			}
			for _, s := range m.services {
				require.NotEmpty(t, s.Spec.Selector, s.Name)
			}
			if v.name != "tls and gossip key" {
				require.NotContains(t, pharosConfig(t, m), "tls:", "TLS is off unless asked for")
				require.NotContains(t, pharosConfig(t, m), "encryption_key_file")
			}
			switch v.name {
			case "existing secret and service account":
				require.NotContains(t, m.secrets, release+"-alertmanager")
				require.NotContains(t, m.accounts, release, "no ServiceAccount of our own")
				for _, b := range m.bindings {
					if b.RoleRef.Name == release+"-"+namespace {
						require.Equal(t, "pharos-sd", b.Subjects[0].Name)
					}
				}
			case "cluster domain and autoscaling":
				require.Contains(t, pharosConfig(t, m), "dns+"+release+"-gossip."+namespace+".svc.cluster.local:7946")
				require.Len(t, m.hpas, 2)
				require.Nil(t, m.deployments[release+"-querier"].Spec.Replicas, "the HPA owns the replica count")
			case "tls and gossip key":
				// Every pod mounts both Secrets (every pod gossips, and any
				// may serve or dial one of the TLS links), and the one
				// configuration turns every internal link on.
				for _, w := range m.pharosWorkloads() {
					secrets := map[string]string{}
					for _, vol := range w.pod.Spec.Volumes {
						if vol.Secret != nil {
							secrets[vol.Name] = vol.Secret.SecretName
						}
					}
					require.Equal(t, tlsSecret, secrets["tls"], w.name)
					require.Equal(t, gossipSecret, secrets["gossip-key"], w.name)
				}
				var cfg struct {
					Server struct {
						GRPCTLS map[string]string `json:"grpc_tls"`
					} `json:"server"`
					IngesterClient struct {
						TLS map[string]string `json:"tls"`
					} `json:"ingester_client"`
					Memberlist struct {
						EncryptionKeyFile string `json:"encryption_key_file"`
					} `json:"memberlist"`
					Ruler struct {
						RaftTLS map[string]string `json:"raft_tls"`
					} `json:"ruler"`
					Notifier struct {
						ClusterTLS map[string]string `json:"cluster_tls"`
					} `json:"notifier"`
				}
				require.NoError(t, yaml.Unmarshal([]byte(pharosConfig(t, m)), &cfg))
				files := map[string]string{"cert_file": "/etc/pharos/tls/tls.crt", "key_file": "/etc/pharos/tls/tls.key"}
				require.Subset(t, cfg.Server.GRPCTLS, files)
				require.Equal(t, "/etc/pharos/tls/ca.crt", cfg.Server.GRPCTLS["client_ca_file"])
				require.Equal(t, "require_and_verify", cfg.Server.GRPCTLS["client_auth"])
				for name, peer := range map[string]map[string]string{"ingester_client.tls": cfg.IngesterClient.TLS, "ruler.raft_tls": cfg.Ruler.RaftTLS, "notifier.cluster_tls": cfg.Notifier.ClusterTLS} {
					require.Subset(t, peer, files, name)
					require.Equal(t, "/etc/pharos/tls/ca.crt", peer["ca_file"], name)
					require.Equal(t, tlsServerName, peer["server_name"], name)
				}
				require.Equal(t, "/etc/pharos/gossip/gossip.key", cfg.Memberlist.EncryptionKeyFile)
			case "memcached servers named":
				checkResultsCache(t, m)
				require.NotContains(t, m.statefulSets, release+"-results-cache", "servers named: the chart runs none")
				fe := renderedFrontend(t, m)
				require.Equal(t, "memcached", fe.Backend)
				require.Equal(t, "dns+memcached.cache.svc:11211,10.1.2.3:11211", fe.Memcached.Addresses)
			case "single with the chart's memcached":
				checkResultsCache(t, m)
				require.Contains(t, m.statefulSets, release+"-results-cache")
			case "no persistence", "single without persistence":
				for _, s := range m.statefulSets {
					require.Empty(t, s.Spec.VolumeClaimTemplates, s.Name)
				}
			}
		})
	}
}
