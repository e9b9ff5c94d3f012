"""The face pipeline: detection, FaceNet embedding. Imports TensorFlow lazily, never at import."""
