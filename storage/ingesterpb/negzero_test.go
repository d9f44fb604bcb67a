package ingesterpb

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

type vtMessage interface {
	MarshalVT() ([]byte, error)
	UnmarshalVT([]byte) error
}

// TestNegativeZeroRoundTrips sets every float and double field of every
// message in ingester.proto, one at a time, to -0, and checks that vtproto
// writes what protobuf-go writes (proto3 serializes -0: it is not the
// default) and reads the sign back. A sample of -0 is a value PromQL can
// tell from 0 (1/x), so losing its sign between distributor and ingester
// changes answers. make proto patches vtproto's `!= 0` tests; a new double
// field the patch does not cover fails here.
func TestNegativeZeroRoundTrips(t *testing.T) {
	negZero := math.Copysign(0, -1)
	msgs := File_ingester_proto.Messages()
	var checked int
	for i := range msgs.Len() {
		md := msgs.Get(i)
		mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
		require.NoError(t, err)
		fields := md.Fields()
		for j := range fields.Len() {
			fd := fields.Get(j)
			if fd.IsList() || fd.IsMap() {
				continue // packed: every element is written, bits as they are
			}
			var v protoreflect.Value
			switch fd.Kind() {
			case protoreflect.DoubleKind:
				v = protoreflect.ValueOfFloat64(negZero)
			case protoreflect.FloatKind:
				v = protoreflect.ValueOfFloat32(float32(negZero))
			default:
				continue
			}
			t.Run(string(fd.FullName()), func(t *testing.T) {
				m := mt.New()
				m.Set(fd, v)
				want, err := proto.MarshalOptions{Deterministic: true}.Marshal(m.Interface())
				require.NoError(t, err)
				require.NotEmpty(t, want, "protobuf-go writes -0")

				vt, ok := m.Interface().(vtMessage)
				require.True(t, ok, "%s has no vtproto methods", md.FullName())
				got, err := vt.MarshalVT()
				require.NoError(t, err)
				require.Equal(t, want, got, "vtproto wrote -0 differently from protobuf-go")

				back := mt.New()
				require.NoError(t, back.Interface().(vtMessage).UnmarshalVT(got))
				require.True(t, back.Has(fd))
				var neg bool
				if fd.Kind() == protoreflect.FloatKind {
					neg = math.Signbit(float64(back.Get(fd).Float()))
				} else {
					neg = math.Signbit(back.Get(fd).Float())
				}
				require.True(t, neg, "the sign of -0 was lost")
			})
			checked++
		}
	}
	require.Positive(t, checked)
}
