// The client-go peer of bench/run.py: a shared pod informer (JSON or protobuf), run as
// kube-controller-manager runs one. Prints one JSON line with what it measured.
//
// Scenarios (--scenario):
//
//	informer   sync N pods; with --control (the replay server) also watch latency at each
//	           --rates, burst throughput, the longest GC pause under traffic, a relist
//	           after 410, and work-queue throughput.
//	reconcile  an informer + rate-limited work queue + one worker: time until every one
//	           of the N objects was reconciled once (a no-op).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/workqueue"
)

const sentAnnotation = "bench.pycontroller.dev/sent-ns"

// stripManagedFields matches pycontroller's default transform.
func stripManagedFields(obj interface{}) (interface{}, error) {
	if accessor, err := meta.Accessor(obj); err == nil {
		accessor.SetManagedFields(nil)
	}
	return obj, nil
}

func status(field string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, field+":") {
			parts := strings.Fields(line)
			kb, _ := strconv.ParseInt(parts[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func resetPeak() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// recorder counts updates that carry the server's send timestamp.
type recorder struct {
	mu        sync.Mutex
	latencies []float64 // ms
	first     time.Time
	last      time.Time
	updates   atomic.Int64
	adds      atomic.Int64
}

func (r *recorder) update(obj interface{}) {
	r.updates.Add(1)
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	sent, ok := pod.Annotations[sentAnnotation]
	if !ok {
		return
	}
	ns, err := strconv.ParseInt(sent, 10, 64)
	if err != nil {
		return
	}
	now := time.Now()
	r.mu.Lock()
	if r.first.IsZero() {
		r.first = now
	}
	r.last = now
	r.latencies = append(r.latencies, float64(now.UnixNano()-ns)/1e6)
	r.mu.Unlock()
}

func (r *recorder) reset() {
	r.mu.Lock()
	r.latencies, r.first, r.last = nil, time.Time{}, time.Time{}
	r.mu.Unlock()
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.latencies)
}

func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p * float64(len(sorted)-1))
	return sorted[i]
}

func post(control, path string) map[string]any {
	resp, err := http.Post(control+path, "application/json", nil)
	if err != nil {
		fail(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	_ = json.Unmarshal(body, &out)
	return out
}

func get(control, path string) map[string]any {
	resp, err := http.Get(control + path)
	if err != nil {
		fail(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	_ = json.Unmarshal(body, &out)
	return out
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func waitFor(cond func() bool, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(time.Millisecond)
	}
	return cond()
}

func maxPauseSince(since time.Time) float64 {
	var stats debug.GCStats
	debug.ReadGCStats(&stats)
	longest := time.Duration(0)
	for i, end := range stats.PauseEnd {
		if end.After(since) && stats.Pause[i] > longest {
			longest = stats.Pause[i]
		}
	}
	return longest.Seconds() * 1000
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig path")
	namespace := flag.String("namespace", "", "namespace")
	protobuf := flag.Bool("protobuf", false, "ask for protobuf (as kube-controller-manager does)")
	expect := flag.Int("expect", 0, "objects the server holds")
	control := flag.String("control", "", "replay server control URL (enables traffic scenarios)")
	scenario := flag.String("scenario", "informer", "informer or reconcile")
	rates := flag.String("rates", "100,1000,5000", "watch event rates (events/s)")
	phase := flag.Float64("phase-seconds", 2, "seconds of traffic per rate")
	burst := flag.Int("burst", 20000, "events in the throughput burst")
	queueItems := flag.Int("queue-items", 200000, "items for the work-queue throughput")
	relist := flag.Bool("relist", true, "measure a relist after 410 (with --control)")
	flag.Parse()

	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fail(err)
	}
	cfg.QPS, cfg.Burst = 1000, 1000
	// Both set explicitly: client-go v0.37's typed clients ask for protobuf when the
	// content type is left empty, so "JSON" has to be asked for.
	if *protobuf {
		cfg.ContentType = "application/vnd.kubernetes.protobuf"
		cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	} else {
		cfg.ContentType = "application/json"
		cfg.AcceptContentTypes = "application/json"
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	runtime.GC()
	baseline := status("VmRSS")
	resetPeak()
	cpu0 := cpuSeconds()
	start := time.Now()
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithNamespace(*namespace),
		informers.WithTransform(stripManagedFields))
	pods := factory.Core().V1().Pods().Informer()
	rec := &recorder{}
	var queue workqueue.TypedRateLimitingInterface[string]
	var reconciled atomic.Int64
	if *scenario == "reconcile" {
		queue = workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
		enqueue := func(obj interface{}) {
			if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
				queue.Add(key)
			}
		}
		_, _ = pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    enqueue,
			UpdateFunc: func(_, n interface{}) { enqueue(n) },
			DeleteFunc: enqueue,
		})
		lister := factory.Core().V1().Pods().Lister()
		go func() {
			for {
				key, shutdown := queue.Get()
				if shutdown {
					return
				}
				ns, name, _ := cache.SplitMetaNamespaceKey(key)
				_, _ = lister.Pods(ns).Get(name) // a no-op reconcile reads the object
				reconciled.Add(1)
				queue.Forget(key)
				queue.Done(key)
			}
		}()
	} else {
		_, _ = pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(interface{}) { rec.adds.Add(1) },
			UpdateFunc: func(_, n interface{}) { rec.update(n) },
			DeleteFunc: func(interface{}) {},
		})
	}
	stop := make(chan struct{})
	factory.Start(stop)
	// Poll every millisecond: cache.WaitForCacheSync polls every 100 ms, too coarse here.
	waitFor(pods.HasSynced, 900*time.Second)
	syncSeconds := time.Since(start).Seconds()
	out := map[string]any{"objects": len(pods.GetStore().ListKeys()), "sync_s": syncSeconds}
	if *scenario == "reconcile" {
		ok := waitFor(func() bool { return reconciled.Load() >= int64(*expect) }, 600*time.Second)
		out = map[string]any{"objects": len(pods.GetStore().ListKeys()),
			"reconcile_all_s": time.Since(start).Seconds(), "complete": ok,
			"cpu_s": cpuSeconds() - cpu0}
		queue.ShutDown()
		printJSON(out)
		close(stop)
		return
	}
	out["cpu_s"] = cpuSeconds() - cpu0
	out["peak_rss"] = status("VmHWM")
	runtime.GC()
	steady := status("VmRSS")
	out["steady_rss"] = steady
	out["baseline_rss"] = baseline
	if n := len(pods.GetStore().ListKeys()); n > 0 {
		out["bytes_per_object"] = float64(steady-baseline) / float64(n)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	out["heap_bytes"] = after.HeapAlloc

	if *control != "" {
		trafficStart := time.Now()
		phases := []map[string]any{}
		for _, field := range strings.Split(*rates, ",") {
			rate, _ := strconv.Atoi(field)
			rec.reset()
			answer := post(*control, fmt.Sprintf("/bench/traffic?rate=%d&seconds=%g", rate, *phase))
			count := int(answer["count"].(float64))
			ok := waitFor(func() bool { return rec.count() >= count },
				time.Duration(*phase*float64(time.Second))+60*time.Second)
			rec.mu.Lock()
			lat := append([]float64(nil), rec.latencies...)
			rec.mu.Unlock()
			sort.Float64s(lat)
			phases = append(phases, map[string]any{"rate": rate, "sent": count,
				"delivered": len(lat), "complete": ok,
				"p50_ms": percentile(lat, 0.5), "p99_ms": percentile(lat, 0.99)})
		}
		out["watch"] = phases
		out["gc_pause_max_ms"] = maxPauseSince(trafficStart)
		// Throughput: one unpaced burst; events per second of wall and of CPU.
		rec.reset()
		burstStart := time.Now()
		c0 := cpuSeconds()
		answer := post(*control, fmt.Sprintf("/bench/traffic?rate=0&count=%d", *burst))
		count := int(answer["count"].(float64))
		ok := waitFor(func() bool { return rec.count() >= count }, 120*time.Second)
		out["burst_gc_pause_max_ms"] = maxPauseSince(burstStart)
		rec.mu.Lock()
		span := rec.last.Sub(rec.first).Seconds()
		rec.mu.Unlock()
		cpu := cpuSeconds() - c0
		out["throughput"] = map[string]any{"events": count, "complete": ok,
			"events_per_s":     float64(count) / maxf(span, 1e-9),
			"events_per_cpu_s": float64(count) / maxf(cpu, 1e-9)}
	}
	if *control != "" && *relist {
		// Relist after 410: every object comes back with a new resourceVersion.
		before := rec.updates.Load()
		resetPeak()
		t0 := time.Now()
		post(*control, "/bench/expire")
		n := int64(len(pods.GetStore().ListKeys()))
		ok := waitFor(func() bool { return rec.updates.Load()-before >= n }, 600*time.Second)
		done := time.Now()
		st := get(*control, "/bench/state")
		relistStart := st["relist_started_ns"].(float64)
		out["relist"] = map[string]any{"complete": ok,
			"total_s":  done.Sub(t0).Seconds(),
			"relist_s": float64(done.UnixNano()-int64(relistStart)) / 1e9,
			"peak_rss": status("VmHWM")}
	}
	// Work-queue throughput: add/get/done of distinct keys on one goroutine.
	q := workqueue.NewTyped[string]()
	keys := make([]string, *queueItems)
	for i := range keys {
		keys[i] = "ns/item-" + strconv.Itoa(i)
	}
	t0 := time.Now()
	for _, k := range keys {
		q.Add(k)
		item, _ := q.Get()
		q.Done(item)
	}
	out["workqueue_ops_per_s"] = float64(len(keys)) / time.Since(t0).Seconds()
	q.ShutDown()
	printJSON(out)
	close(stop)
}

func maxf(a, b float64) float64 {
	if a > b {
		return a
	}
	return b
}

func printJSON(out map[string]any) {
	data, _ := json.Marshal(out)
	fmt.Println(string(data))
}
