package main

// The cluster phase's security variants (-cluster-security, default
// "secret,tls"): the 2-worker cluster again with a cluster secret (every
// frame MACed) and with mutual TLS 1.3, in the same reps as the
// unprotected one, reported as the workers' CPU time per line and its
// ratio to the unprotected cluster's (CPU time is steadier than wall time
// on shared cores). Target: the secret costs at most 5 % more.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// secretTarget: the 2-worker cluster with a secret may use at most this
// much more CPU per line than without.
const secretTarget = 1.05

// security is one way to run the cluster's links.
type security struct {
	Name string   `json:"name"`
	args []string // for every worker and for external_sender
}

// securityVariants makes the secret file and certificates the variants
// named in list need, in dir (removed by the caller).
func securityVariants(list []string, dir string) ([]security, error) {
	var out []security
	for _, name := range list {
		switch name {
		case "secret":
			b := make([]byte, 32)
			if _, err := rand.Read(b); err != nil {
				return nil, err
			}
			f := filepath.Join(dir, "cluster.secret")
			if err := os.WriteFile(f, []byte(hex.EncodeToString(b)+"\n"), 0o600); err != nil {
				return nil, err
			}
			out = append(out, security{Name: name, args: []string{"--cluster-secret-file", f}})
		case "tls":
			cert, key, ca, err := benchCerts(dir)
			if err != nil {
				return nil, fmt.Errorf("certificates: %w", err)
			}
			out = append(out, security{Name: name, args: []string{"--tls-cert", cert, "--tls-key", key, "--tls-ca", ca}})
		default:
			return nil, fmt.Errorf("unknown -cluster-security %q (have secret, tls)", name)
		}
	}
	return out, nil
}

// benchCerts writes a CA and one certificate for 127.0.0.1 (server and
// client) signed by it, made now: no key material is kept.
func benchCerts(dir string) (cert, key, caFile string, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", "", err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return "", "", "", err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return "", "", "", err
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", "", err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "bench worker"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
	if err != nil {
		return "", "", "", err
	}
	kDER, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return "", "", "", err
	}
	cert, key, caFile = filepath.Join(dir, "worker.crt"), filepath.Join(dir, "worker.key"), filepath.Join(dir, "ca.crt")
	for _, f := range []struct {
		path, typ string
		der       []byte
		mode      os.FileMode
	}{{cert, "CERTIFICATE", der, 0o644}, {key, "EC PRIVATE KEY", kDER, 0o600}, {caFile, "CERTIFICATE", caDER, 0o644}} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), f.mode); err != nil {
			return "", "", "", err
		}
	}
	return cert, key, caFile, nil
}

// cpuPerLine is the CPU time of all the workers of a run per line.
func cpuPerLine(r *clusterRun) float64 {
	if r == nil {
		return 0
	}
	var ns float64
	for _, p := range r.Procs {
		ns += p.NsPerMsg
	}
	return ns
}

// securedBrief is a security variant's summary over the reps.
type securedBrief struct {
	Name        string    `json:"name"`
	Rate        float64   `json:"lines_per_s"`             // median
	CPUPerLine  float64   `json:"workers_cpu_ns_per_line"` // median
	Ratio       float64   `json:"cpu_ratio_to_unprotected"`
	PairedRatio []float64 `json:"paired_cpu_ratios"` // per rep
}

// summarizeSecured fills cr.Secured from the reps.
func (cr *clusterResult) summarizeSecured() {
	cr.Secured = nil
	var plain []float64
	for _, r := range cr.Reps {
		if r.Two != nil {
			plain = append(plain, cpuPerLine(r.Two))
		}
	}
	cr.PlainCPUPerLine = median(plain)
	for _, name := range cr.Security {
		sb := securedBrief{Name: name}
		var rates, cpus []float64
		for _, r := range cr.Reps {
			run := r.Secured[name]
			if run == nil {
				continue
			}
			rates, cpus = append(rates, run.Rate), append(cpus, cpuPerLine(run))
			if r.Two != nil {
				sb.PairedRatio = append(sb.PairedRatio, ratioOf(cpuPerLine(run), cpuPerLine(r.Two)))
			}
		}
		sb.Rate, sb.CPUPerLine = median(rates), median(cpus)
		sb.Ratio = ratioOf(sb.CPUPerLine, cr.PlainCPUPerLine)
		cr.Secured = append(cr.Secured, sb)
	}
}

// renderSecured is the variants' part of the cluster table.
func renderSecured(b *strings.Builder, cr *clusterResult) {
	if len(cr.Secured) == 0 {
		return
	}
	fmt.Fprintf(b, "      2 workers, protected links (same reps; CPU time of both workers per line, medians):\n")
	fmt.Fprintf(b, "      %-34s %11s   %8.0f ns/line\n", "unprotected (0.6)", fmtRate(cr.TwoRate), cr.PlainCPUPerLine)
	for _, s := range cr.Secured {
		line := fmt.Sprintf("      %-34s %11s   %8.0f ns/line  %.3fx %s", s.Name, fmtRate(s.Rate), s.CPUPerLine, s.Ratio, fmtRatios(s.PairedRatio))
		if s.Name == "secret" {
			line += fmt.Sprintf("  target <= %.2fx: %s", secretTarget, verdict(s.Ratio > 0 && s.Ratio <= secretTarget))
		}
		fmt.Fprintln(b, line)
	}
}
