package check

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/meshnode/meshnode/membership"
	"github.com/meshnode/meshnode/server"
)

// manifestDir is deploy/kubernetes, the folder of the manifests.
const manifestDir = ".."

// leaveBound is how long `node agent` may take to leave gracefully after SIGTERM (its stop
// timeout); the pods' grace period must be longer.
const leaveBound = 10

// manifests holds every object of deploy/kubernetes/*.yaml, decoded strictly.
type manifests struct {
	services     []*corev1.Service
	statefulSets []*appsv1.StatefulSet
	pdbs         []*policyv1.PodDisruptionBudget
	secrets      []*corev1.Secret
}

// load decodes every document of every manifest into its Kubernetes type: an unknown kind,
// an unknown field or a value of the wrong type fails the test.
func load(t *testing.T) *manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(manifestDir, "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	m := &manifests{}
	for _, file := range files {
		data, err := os.ReadFile(file)
		require.NoError(t, err)
		for i, doc := range bytes.Split(data, []byte("\n---\n")) {
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			var tm metav1.TypeMeta
			require.NoError(t, yaml.Unmarshal(doc, &tm), "%s #%d", file, i)
			where := file + " #" + strconv.Itoa(i) + " (" + tm.APIVersion + " " + tm.Kind + ")"
			var obj any
			switch tm.APIVersion + "/" + tm.Kind {
			case "v1/Service":
				s := &corev1.Service{}
				m.services, obj = append(m.services, s), s
			case "apps/v1/StatefulSet":
				s := &appsv1.StatefulSet{}
				m.statefulSets, obj = append(m.statefulSets, s), s
			case "policy/v1/PodDisruptionBudget":
				p := &policyv1.PodDisruptionBudget{}
				m.pdbs, obj = append(m.pdbs, p), p
			case "v1/Secret":
				s := &corev1.Secret{}
				m.secrets, obj = append(m.secrets, s), s
			default:
				t.Fatalf("%s: a kind this test does not know", where)
			}
			require.NoError(t, yaml.UnmarshalStrict(doc, obj), where)
		}
	}
	return m
}

// agentHelp is what `node agent --help` prints: every flag and environment variable.
type agentHelp struct {
	flags, envs []string
}

// readAgentHelp builds the node binary from the repository and reads its agent flags.
func readAgentHelp(t *testing.T) agentHelp {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "node")
	build := exec.Command("go", "build", "-o", bin, "./cmd/node")
	build.Dir = filepath.Join(manifestDir, "..", "..")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build the node: %s", out)
	out, _ = exec.Command(bin, "agent", "--help").CombinedOutput() // exit status 0 or 2, by the flag library
	var h agentHelp
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:-\w, )?--?([a-z][a-z0-9-]+)\b`).FindAllStringSubmatch(string(out), -1) {
		h.flags = append(h.flags, m[1])
	}
	for _, m := range regexp.MustCompile(`\[\$([A-Z][A-Z0-9_]*)\]`).FindAllStringSubmatch(string(out), -1) {
		h.envs = append(h.envs, m[1])
	}
	require.Contains(t, h.flags, "cluster-name", "`node agent --help` should list its flags:\n%s", out)
	require.Contains(t, h.envs, "CLUSTER_SEEDS", "`node agent --help` should name the environment variables:\n%s", out)
	return h
}

func TestManifestsDecodeStrictly(t *testing.T) {
	m := load(t)
	require.Len(t, m.statefulSets, 1)
	require.Len(t, m.pdbs, 1)
	require.Len(t, m.services, 2)
}

// The manifests agree with each other and with the node binary: ports, probes, the readiness
// service, the seed, the flags and environment variables, the secret file, the grace period.
func TestManifestsMatchTheNode(t *testing.T) {
	m := load(t)
	help := readAgentHelp(t)
	sts := m.statefulSets[0]
	pod := sts.Spec.Template
	podLabels := labels.Set(pod.Labels)
	require.Len(t, pod.Spec.Containers, 1)
	c := pod.Spec.Containers[0]

	// The port: the node's, named grpc, the one both probes ask.
	port := containerPort(t, c, "grpc")
	require.Equal(t, int32(membership.DefaultPort), port)
	require.Equal(t, strconv.Itoa(membership.DefaultPort), envValue(c, "CLUSTER_PORT"))
	require.NotNil(t, c.LivenessProbe, "liveness probe")
	require.NotNil(t, c.LivenessProbe.GRPC, "liveness is a native gRPC probe")
	require.Equal(t, port, c.LivenessProbe.GRPC.Port)
	require.True(t, c.LivenessProbe.GRPC.Service == nil || *c.LivenessProbe.GRPC.Service == "", "liveness is the empty service name")
	require.NotNil(t, c.ReadinessProbe, "readiness probe")
	require.NotNil(t, c.ReadinessProbe.GRPC, "readiness is a native gRPC probe")
	require.Equal(t, port, c.ReadinessProbe.GRPC.Port)
	require.NotNil(t, c.ReadinessProbe.GRPC.Service)
	require.Equal(t, server.ReadinessService, *c.ReadinessProbe.GRPC.Service)

	// Every flag and environment variable is one the node knows.
	require.Equal(t, "agent", c.Args[0])
	for _, arg := range c.Args[1:] {
		name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		require.True(t, strings.HasPrefix(arg, "--"), "%s: flags as --name=value", arg)
		require.Contains(t, help.flags, name, "--%s is no flag of node agent", name)
	}
	for _, e := range c.Env {
		switch {
		case e.Name == "POD_NAME" || e.Name == "POD_NAMESPACE" || e.Name == "GOMEMLIMIT":
		default:
			require.Contains(t, help.envs, e.Name, "%s is no environment variable of node agent", e.Name)
		}
	}
	require.NoError(t, membership.ValidateClusterName(envValue(c, "CLUSTER_NAME")))

	// Discovery: a headless Service publishing every pod, ready or not; the seed is its SRV
	// name, on the port the pods serve; the StatefulSet's pods are named through it.
	peers := service(t, m, sts.Spec.ServiceName)
	require.Equal(t, corev1.ClusterIPNone, peers.Spec.ClusterIP, "the peer Service is headless")
	require.True(t, peers.Spec.PublishNotReadyAddresses, "nodes must find each other before they are ready")
	require.True(t, labels.SelectorFromSet(peers.Spec.Selector).Matches(podLabels))
	require.Len(t, peers.Spec.Ports, 1)
	require.Equal(t, port, peers.Spec.Ports[0].Port)
	require.Equal(t, "grpc", peers.Spec.Ports[0].TargetPort.String())
	seeds := envValue(c, "CLUSTER_SEEDS")
	require.Equal(t, "dnssrv+_"+peers.Spec.Ports[0].Name+"._tcp."+peers.Name+".$(POD_NAMESPACE).svc.cluster.local", seeds)
	expanded := strings.ReplaceAll(seeds, "$(POD_NAMESPACE)", "default")
	_, err := membership.ParseDNSSeed(expanded)
	require.NoError(t, err)
	advertise := strings.NewReplacer("$(POD_NAME)", "meshnode-0", "$(POD_NAMESPACE)", "default").Replace(envValue(c, "CLUSTER_ADVERTISE"))
	_, err = membership.NewNodeID(strings.ReplaceAll(envValue(c, "NODE_NAME"), "$(POD_NAME)", sts.Name+"-0"), advertise, membership.DefaultPort)
	require.NoError(t, err, "the id a pod gets")
	require.Equal(t, appsv1.ParallelPodManagement, sts.Spec.PodManagementPolicy, "a node is ready only once another joined it")

	// The API Service: the ready pods only.
	for _, s := range m.services {
		if s.Name != peers.Name {
			require.False(t, s.Spec.PublishNotReadyAddresses, "%s: clients go to ready nodes only", s.Name)
			require.True(t, labels.SelectorFromSet(s.Spec.Selector).Matches(podLabels))
			require.Equal(t, port, s.Spec.Ports[0].Port)
		}
	}

	// The secret, a file from a Secret volume.
	secretFile := flagValue(c, "secret-file")
	require.NotEmpty(t, secretFile, "--secret-file")
	mounted := false
	for _, vm := range c.VolumeMounts {
		if strings.HasPrefix(secretFile, vm.MountPath+"/") {
			i := slices.IndexFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == vm.Name })
			require.GreaterOrEqual(t, i, 0)
			require.NotNil(t, pod.Spec.Volumes[i].Secret, "%s comes from a Secret", secretFile)
			mounted = true
		}
	}
	require.True(t, mounted, "%s is in a mounted volume", secretFile)
	require.NotNil(t, pod.Spec.SecurityContext.FSGroup, "the non-root node reads the secret through its group")

	// Graceful leave, disruptions, resources, hardening.
	require.NotNil(t, pod.Spec.TerminationGracePeriodSeconds)
	require.Greater(t, *pod.Spec.TerminationGracePeriodSeconds, int64(leaveBound), "longer than a leave takes")
	pdb := m.pdbs[0]
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	require.NoError(t, err)
	require.True(t, sel.Matches(podLabels), "the PodDisruptionBudget covers the nodes")
	require.Equal(t, 1, pdb.Spec.MaxUnavailable.IntValue())
	require.False(t, c.Resources.Requests.Cpu().IsZero())
	require.False(t, c.Resources.Requests.Memory().IsZero())
	require.False(t, c.Resources.Limits.Memory().IsZero())
	require.True(t, *pod.Spec.SecurityContext.RunAsNonRoot)
	require.True(t, *c.SecurityContext.ReadOnlyRootFilesystem)
	require.False(t, *c.SecurityContext.AllowPrivilegeEscalation)
}

func containerPort(t *testing.T, c corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s has no port named %s", c.Name, name)
	return 0
}

func envValue(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func flagValue(c corev1.Container, name string) string {
	for _, arg := range c.Args {
		if v, ok := strings.CutPrefix(arg, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

func service(t *testing.T, m *manifests, name string) *corev1.Service {
	t.Helper()
	for _, s := range m.services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no Service %s", name)
	return nil
}

// The decoding this test relies on is strict: a misspelt field fails.
func TestStrictDecodingRejectsUnknownFields(t *testing.T) {
	doc := []byte("apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  publishNotReadyAdresses: true\n")
	require.ErrorContains(t, yaml.UnmarshalStrict(doc, &corev1.Service{}), "publishNotReadyAdresses")
	require.NoError(t, yaml.Unmarshal(doc, &corev1.Service{}), "a lenient decoder would have let it pass")
}
