package synod.example;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.SchemaStore;

/**
 * Decodes record values of Synod's internal topics with Apache Avro's BinaryMessageDecoder.
 *
 * <p>Usage: {@code ReadSynod <schemas/avro> <value file>...}; prints, per value, its file, the
 * envelope's type, message_id, task_id and sender role, tab-separated. Every schema a writer may
 * have used is in schemas/avro/history; the SchemaStore finds the writer's by the fingerprint
 * after the C3 01 marker, and each type is read with its current schema (schemas/avro/TYPE.avsc).
 */
public final class ReadSynod {
  private ReadSynod() {}

  public static void main(String[] args) throws IOException {
    Path schemas = Path.of(args[0]);
    SchemaStore.Cache writers = new SchemaStore.Cache();
    List<Path> history;
    try (Stream<Path> files = Files.walk(schemas.resolve("history"))) {
      history = files.filter(p -> p.toString().endsWith(".avsc")).sorted().toList();
    }
    for (Path file : history) {
      writers.addSchema(new Schema.Parser().parse(file.toFile()));
    }
    Map<String, BinaryMessageDecoder<GenericRecord>> readers = new HashMap<>();
    for (int i = 1; i < args.length; i++) {
      byte[] value = Files.readAllBytes(Path.of(args[i]));
      // The reader schema is the type's current one: find the writer's name first.
      Schema writer = writers.findByFingerprint(fingerprint(value));
      if (writer == null) {
        throw new IllegalStateException(args[i] + ": no schema in " + schemas + " for its fingerprint");
      }
      String type = writer.getName().replaceFirst("Envelope$", "");
      BinaryMessageDecoder<GenericRecord> decoder =
          readers.computeIfAbsent(type, t -> decoderFor(schemas, t, writers));
      GenericRecord envelope = decoder.decode(value);
      GenericRecord sender = (GenericRecord) envelope.get("sender");
      System.out.println(
          String.join(
              "\t",
              Path.of(args[i]).getFileName().toString(),
              String.valueOf(envelope.get("type")),
              String.valueOf(envelope.get("message_id")),
              String.valueOf(envelope.get("task_id")),
              String.valueOf(sender.get("role"))));
    }
  }

  private static long fingerprint(byte[] value) {
    if (value.length < 10 || (value[0] & 0xff) != 0xC3 || value[1] != 0x01) {
      throw new IllegalArgumentException("not Avro single-object encoding (a JSON edge record?)");
    }
    long fp = 0;
    for (int i = 9; i >= 2; i--) { // little-endian
      fp = (fp << 8) | (value[i] & 0xff);
    }
    return fp;
  }

  private static BinaryMessageDecoder<GenericRecord> decoderFor(
      Path schemas, String type, SchemaStore writers) {
    try {
      Schema current = new Schema.Parser().parse(schemas.resolve(type + ".avsc").toFile());
      return new BinaryMessageDecoder<>(GenericData.get(), current, writers);
    } catch (IOException e) {
      throw new IllegalStateException("cannot read the schema of " + type, e);
    }
  }
}
