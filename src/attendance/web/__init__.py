"""The HTTP API. It only validates, stores uploads and enqueues: the face pipeline runs in workers.

Nothing here may import TensorFlow or DeepFace, so the web stays small and starts fast.
"""
