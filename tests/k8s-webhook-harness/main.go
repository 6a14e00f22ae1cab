// Command k8s-webhook-harness drives the Helios webhook with the Kubernetes API server's own
// validating-webhook dispatcher (k8s.io/apiserver/pkg/admission/plugin/webhook/validating):
// the same code kube-apiserver runs to match webhooks (rules, namespaceSelector), build the
// AdmissionReview, call the webhook over TLS, verify its response (uid, patch, version) and turn
// it into an admission error, warnings and audit annotations.
//
// Given a MutatingWebhookConfiguration instead, it runs the mutating dispatcher
// (k8s.io/apiserver/pkg/admission/plugin/webhook/mutating), which applies the webhook's
// JSONPatch to the object, and prints the patched object as "object" (reinvoked as
// kube-apiserver would when the configuration says reinvocationPolicy: IfNeeded).
//
// Usage:
//
//	k8s-webhook-harness -webhook-config deploy/validatingwebhookconfiguration.yaml \
//	  -url https://127.0.0.1:8443 -ca ca.pem -object pod.json [-old-object old.json] \
//	  [-namespace shop] [-namespace-labels k=v,...] [-operation CREATE] [-subresource s] \
//	  [-dry-run] [-user alice] [-groups devs]
//
// It prints one JSON object: {"called": bool, "allowed": bool, "code": int, "message": "...",
// "warnings": [...], "annotations": {...}}. Exit 0 when the dispatcher produced a verdict, 2 on
// a harness error.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/admission/plugin/webhook/mutating"
	"k8s.io/apiserver/pkg/admission/plugin/webhook/validating"
	"k8s.io/apiserver/pkg/authentication/user"
	webhookutil "k8s.io/apiserver/pkg/util/webhook"
	"k8s.io/apiserver/pkg/warning"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"sigs.k8s.io/yaml"
)

type result struct {
	Allowed     bool              `json:"allowed"`
	Code        int32             `json:"code"`
	Message     string            `json:"message"`
	Warnings    []string          `json:"warnings"`
	Annotations map[string]string `json:"annotations"`
	// The object after the mutating dispatcher applied the patches (mutating runs only).
	Object json.RawMessage `json:"object,omitempty"`
}

// What both dispatchers need configured (both embed the generic webhook).
type plugin interface {
	admission.InitializationValidator
	SetAuthenticationInfoResolverWrapper(webhookutil.AuthenticationInfoResolverWrapper)
	SetServiceResolver(webhookutil.ServiceResolver)
	SetExternalKubeClientSet(kubernetes.Interface)
	SetExternalKubeInformerFactory(informers.SharedInformerFactory)
	WaitForReady() bool
}

// Resolves every service to the test server's address; the TLS server name stays
// <service>.<namespace>.svc, as in a cluster.
type serviceResolver struct{ base url.URL }

func (s serviceResolver) ResolveEndpoint(namespace, name string, port int32) (*url.URL, error) {
	u := s.base
	return &u, nil
}

// No client credentials: the webhook does not authenticate the API server.
type authResolver struct{}

func (authResolver) ClientConfigFor(hostPort string) (*rest.Config, error) {
	return &rest.Config{}, nil
}
func (authResolver) ClientConfigForService(name, namespace string, port int) (*rest.Config, error) {
	return &rest.Config{}, nil
}

type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) AddWarning(agent, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

// Records the audit annotations the dispatcher accepted (it rejects invalid keys itself).
type recordingAttributes struct {
	admission.Attributes
	mu          sync.Mutex
	annotations map[string]string
}

func (r *recordingAttributes) AddAnnotation(key, value string) error {
	if err := r.Attributes.AddAnnotation(key, value); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.annotations[key] = value
	return nil
}

var resources = map[string]string{
	"Pod": "pods", "PodTemplate": "podtemplates", "ReplicationController": "replicationcontrollers",
	"Deployment": "deployments", "ReplicaSet": "replicasets", "StatefulSet": "statefulsets",
	"DaemonSet": "daemonsets", "Job": "jobs", "CronJob": "cronjobs", "ConfigMap": "configmaps",
}

func decode(path string) (runtime.Object, *schema.GroupVersionKind, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return scheme.Codecs.UniversalDeserializer().Decode(data, nil, nil)
}

func run() (*result, error) {
	configPath := flag.String("webhook-config", "deploy/validatingwebhookconfiguration.yaml", "ValidatingWebhookConfiguration manifest")
	serverURL := flag.String("url", "", "where the webhook service is reached, e.g. https://127.0.0.1:8443")
	caPath := flag.String("ca", "", "PEM CA bundle of the webhook's serving certificate")
	objectPath := flag.String("object", "", "the object under admission (JSON or YAML)")
	oldPath := flag.String("old-object", "", "the stored object, for UPDATE")
	namespace := flag.String("namespace", "default", "the object's namespace")
	nsLabels := flag.String("namespace-labels", "", "labels of that namespace, k=v,...")
	operation := flag.String("operation", "CREATE", "CREATE or UPDATE")
	subresource := flag.String("subresource", "", "e.g. ephemeralcontainers")
	dryRun := flag.Bool("dry-run", false, "a dryRun request")
	username := flag.String("user", "alice", "requesting user")
	groups := flag.String("groups", "system:authenticated", "requesting user's groups, comma-separated")
	validate := flag.String("validate-manifests", "", "instead: strictly decode every Kubernetes document of the YAML files in this directory")
	klog.InitFlags(nil) // -v=N shows the dispatcher's own decisions
	flag.Parse()
	if *validate != "" {
		return nil, validateManifests(*validate)
	}

	raw, err := os.ReadFile(*configPath)
	if err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(*caPath)
	if err != nil {
		return nil, err
	}
	var kind struct {
		Kind string `json:"kind"`
	}
	if err := yaml.Unmarshal(raw, &kind); err != nil {
		return nil, fmt.Errorf("%s: %w", *configPath, err)
	}
	mutatingConfig := kind.Kind == "MutatingWebhookConfiguration"
	var configObject runtime.Object
	if mutatingConfig {
		var mwc admissionregistrationv1.MutatingWebhookConfiguration
		if err := yaml.UnmarshalStrict(raw, &mwc); err != nil {
			return nil, fmt.Errorf("%s: %w", *configPath, err)
		}
		for i := range mwc.Webhooks {
			setMutatingDefaults(&mwc.Webhooks[i])
			mwc.Webhooks[i].ClientConfig.CABundle = ca
		}
		configObject = &mwc
	} else {
		var vwc admissionregistrationv1.ValidatingWebhookConfiguration
		if err := yaml.UnmarshalStrict(raw, &vwc); err != nil {
			return nil, fmt.Errorf("%s: %w", *configPath, err)
		}
		for i := range vwc.Webhooks {
			setDefaults(&vwc.Webhooks[i])
			// What cert-manager's CA injector does in a cluster.
			vwc.Webhooks[i].ClientConfig.CABundle = ca
		}
		configObject = &vwc
	}
	base, err := url.Parse(*serverURL)
	if err != nil {
		return nil, err
	}

	labels := map[string]string{"kubernetes.io/metadata.name": *namespace}
	for _, kv := range strings.Split(*nsLabels, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			labels[k] = v
		}
	}
	client := fake.NewSimpleClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: *namespace, Labels: labels}},
		configObject,
	)
	factory := informers.NewSharedInformerFactory(client, 0)

	var wh plugin
	var mutator *mutating.Plugin
	var validator *validating.Plugin
	if mutatingConfig {
		if mutator, err = mutating.NewMutatingWebhook(nil); err != nil {
			return nil, err
		}
		wh = mutator
	} else {
		if validator, err = validating.NewValidatingAdmissionWebhook(nil); err != nil {
			return nil, err
		}
		wh = validator
	}
	wh.SetAuthenticationInfoResolverWrapper(func(webhookutil.AuthenticationInfoResolver) webhookutil.AuthenticationInfoResolver {
		return authResolver{}
	})
	wh.SetServiceResolver(serviceResolver{*base})
	wh.SetExternalKubeClientSet(client)
	wh.SetExternalKubeInformerFactory(factory)
	if err := wh.ValidateInitialization(); err != nil {
		return nil, err
	}
	stop := make(chan struct{})
	defer close(stop)
	factory.Start(stop)
	factory.WaitForCacheSync(stop)
	// The plugin's own informer must see the configuration before it can match anything.
	if !wh.WaitForReady() {
		return nil, fmt.Errorf("the webhook plugin's configuration informer did not sync")
	}

	obj, gvk, err := decode(*objectPath)
	if err != nil {
		return nil, fmt.Errorf("object: %w", err)
	}
	var old runtime.Object
	if *oldPath != "" {
		if old, _, err = decode(*oldPath); err != nil {
			return nil, fmt.Errorf("old object: %w", err)
		}
	}
	meta, err := metaOf(obj)
	if err != nil {
		return nil, err
	}
	resource, ok := resources[gvk.Kind]
	if !ok {
		return nil, fmt.Errorf("no resource known for kind %s", gvk.Kind)
	}
	op := admission.Operation(*operation)
	var options runtime.Object = &metav1.CreateOptions{}
	if op == admission.Update {
		options = &metav1.UpdateOptions{}
	}
	info := &user.DefaultInfo{Name: *username, Groups: strings.Split(*groups, ",")}
	attrs := &recordingAttributes{
		Attributes: admission.NewAttributesRecord(obj, old, *gvk, *namespace, meta.GetName(),
			gvk.GroupVersion().WithResource(resource), *subresource, op, options, *dryRun, info),
		annotations: map[string]string{},
	}

	recorder := &warnings{}
	ctx := warning.WithWarningRecorder(context.Background(), recorder)
	interfaces := admission.NewObjectInterfacesFromScheme(scheme.Scheme)
	if mutator != nil {
		err = mutator.Admit(ctx, attrs, interfaces)
	} else {
		err = validator.Validate(ctx, attrs, interfaces)
	}

	out := &result{Allowed: err == nil, Warnings: recorder.list, Annotations: attrs.annotations}
	if out.Warnings == nil {
		out.Warnings = []string{}
	}
	if err != nil {
		out.Message = err.Error()
		if status, ok := err.(apierrors.APIStatus); ok {
			out.Code = status.Status().Code
		}
	}
	if mutator != nil {
		// Typed objects drop their apiVersion/kind on decode; print the object whole.
		attrs.GetObject().GetObjectKind().SetGroupVersionKind(*gvk)
		if out.Object, err = json.Marshal(attrs.GetObject()); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// setDefaults applies the defaults kube-apiserver stores for an admissionregistration.k8s.io/v1
// webhook (k8s.io/kubernetes pkg/apis/admissionregistration/v1/defaults.go), which the
// dispatcher relies on: an absent selector there is "match everything", not "match nothing".
func setDefaults(h *admissionregistrationv1.ValidatingWebhook) {
	if h.NamespaceSelector == nil {
		h.NamespaceSelector = &metav1.LabelSelector{}
	}
	if h.ObjectSelector == nil {
		h.ObjectSelector = &metav1.LabelSelector{}
	}
	if h.FailurePolicy == nil {
		fail := admissionregistrationv1.Fail
		h.FailurePolicy = &fail
	}
	if h.MatchPolicy == nil {
		equivalent := admissionregistrationv1.Equivalent
		h.MatchPolicy = &equivalent
	}
	if h.TimeoutSeconds == nil {
		ten := int32(10)
		h.TimeoutSeconds = &ten
	}
	for i := range h.Rules {
		if h.Rules[i].Scope == nil {
			all := admissionregistrationv1.AllScopes
			h.Rules[i].Scope = &all
		}
	}
	if h.ClientConfig.Service != nil && h.ClientConfig.Service.Port == nil {
		port := int32(443)
		h.ClientConfig.Service.Port = &port
	}
}

// setMutatingDefaults is setDefaults for a mutating webhook, plus its reinvocationPolicy
// default (Never).
func setMutatingDefaults(h *admissionregistrationv1.MutatingWebhook) {
	v := admissionregistrationv1.ValidatingWebhook{
		NamespaceSelector: h.NamespaceSelector, ObjectSelector: h.ObjectSelector,
		FailurePolicy: h.FailurePolicy, MatchPolicy: h.MatchPolicy,
		TimeoutSeconds: h.TimeoutSeconds, Rules: h.Rules, ClientConfig: h.ClientConfig,
	}
	setDefaults(&v)
	h.NamespaceSelector, h.ObjectSelector = v.NamespaceSelector, v.ObjectSelector
	h.FailurePolicy, h.MatchPolicy, h.TimeoutSeconds = v.FailurePolicy, v.MatchPolicy, v.TimeoutSeconds
	h.Rules, h.ClientConfig = v.Rules, v.ClientConfig
	if h.ReinvocationPolicy == nil {
		never := admissionregistrationv1.NeverReinvocationPolicy
		h.ReinvocationPolicy = &never
	}
}

// validateManifests decodes every document with the API types in strict mode (unknown or
// duplicate fields are errors), as `kubectl apply --validate=strict` would without a cluster.
// Kinds the client-go scheme does not know (cert-manager, kustomize) are listed as skipped.
func validateManifests(dir string) error {
	strict := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return err
	}
	checked := 0
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		for i, doc := range strings.Split(string(raw), "\n---") {
			data, err := yaml.YAMLToJSON([]byte(doc))
			if err != nil {
				return fmt.Errorf("%s document %d: %w", file, i, err)
			}
			if string(data) == "null" {
				continue
			}
			if _, gvk, err := strict.Decode(data, nil, nil); err != nil {
				if runtime.IsNotRegisteredError(err) {
					fmt.Fprintf(os.Stderr, "skipped %s document %d: %v\n", file, i, gvk)
					continue
				}
				return fmt.Errorf("%s document %d: %w", file, i, err)
			}
			checked++
		}
	}
	fmt.Printf("{\"validated\": %d}\n", checked)
	return nil
}

func metaOf(obj runtime.Object) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("object has no metadata")
	}
	return m, nil
}

func main() {
	out, err := run()
	if err == nil && out == nil {
		return // -validate-manifests printed its own summary
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "k8s-webhook-harness: %v\n", err)
		os.Exit(2)
	}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(out); err != nil {
		os.Exit(2)
	}
}
