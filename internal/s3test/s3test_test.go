package s3test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func client(s *Server, secret string) *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(s.URL),
		Region:       s.Region,
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, secret, ""),
	})
}

// TestServer: a bucket of NewBucket takes signed writes and reads, refuses
// a wrong secret, and Stop removes everything.
func TestServer(t *testing.T) {
	ctx := context.Background()
	s, err := Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bucket := s.NewBucket(t)
	c := client(s, s.SecretKey)
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("a/b.txt"), Body: strings.NewReader("hello")}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(s.Dir(), bucket, "a", "b.txt")); err != nil || string(b) != "hello" {
		t.Errorf("the object on disk: %q, %v", b, err)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("a/b.txt")})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if string(b) != "hello" {
		t.Errorf("GetObject = %q", b)
	}
	if _, err := client(s, "wrong").GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("a/b.txt")}); err == nil {
		t.Error("a wrong secret was accepted")
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Dir()); !os.IsNotExist(err) {
		t.Errorf("Stop left %s: %v", s.Dir(), err)
	}
}

func TestBucketName(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`)
	for _, name := range []string{"TestX", "TestX/sub_test#01", strings.Repeat("Ü", 100), "Test--x--"} {
		if b := bucketName(name, 12345); !valid.MatchString(b) || strings.Contains(b, "--") {
			t.Errorf("bucketName(%q) = %q, not a valid bucket name", name, b)
		}
	}
}

// TestBinaryMissingInCI: under CI a missing binary is an error saying what
// to run, never an install or a skip.
func TestBinaryMissingInCI(t *testing.T) {
	empty := t.TempDir()
	t.Setenv("SLUICE_TEST_VERSITYGW", "")
	t.Setenv("PATH", empty)
	t.Setenv("GOBIN", empty)
	t.Setenv("CI", "true")
	_, err := Binary()
	if err == nil || !strings.Contains(err.Error(), "scripts/ensure-versitygw.sh") {
		t.Errorf("Binary() = %v, want an error naming scripts/ensure-versitygw.sh", err)
	}
}
