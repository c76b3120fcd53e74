# The txt2img API workflow of comfyx.testing.workflows.txt2img for the tiny checkpoint, as Nix.
{ checkpoint }:
{
  "1" = {
    class_type = "CheckpointLoaderSimple";
    inputs.ckpt_name = checkpoint;
  };
  "2" = {
    class_type = "CLIPTextEncode";
    inputs = {
      text = "a red fox in the snow";
      clip = [ "1" 1 ];
    };
  };
  "3" = {
    class_type = "CLIPTextEncode";
    inputs = {
      text = "blurry";
      clip = [ "1" 1 ];
    };
  };
  "4" = {
    class_type = "EmptyLatentImage";
    inputs = {
      width = 64;
      height = 64;
      batch_size = 1;
    };
  };
  "5" = {
    class_type = "KSampler";
    inputs = {
      model = [ "1" 0 ];
      positive = [ "2" 0 ];
      negative = [ "3" 0 ];
      latent_image = [ "4" 0 ];
      seed = 0;
      steps = 2;
      cfg = 7.0;
      sampler_name = "euler";
      scheduler = "normal";
      denoise = 1.0;
    };
  };
  "6" = {
    class_type = "VAEDecode";
    inputs = {
      samples = [ "5" 0 ];
      vae = [ "1" 2 ];
    };
  };
  "7" = {
    class_type = "SaveImage";
    inputs = {
      images = [ "6" 0 ];
      filename_prefix = "vmtest";
    };
  };
}
