package placement

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func timestampProto(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

func durationProto(d time.Duration) *durationpb.Duration { return durationpb.New(d) }
